output "alarm_names" {
  description = "Alarm names keyed by what they watch."
  value       = { for k, a in aws_cloudwatch_metric_alarm.this : k => a.alarm_name }
}

output "alarms" {
  description = "Metric and actions of every alarm, keyed by what it watches."
  value = { for k, a in aws_cloudwatch_metric_alarm.this : k => {
    namespace     = a.namespace
    metric_name   = a.metric_name
    dimensions    = a.dimensions
    alarm_actions = a.alarm_actions
    ok_actions    = a.ok_actions
  } }
}

output "dashboard_name" {
  description = "Name of the CloudWatch dashboard."
  value       = aws_cloudwatch_dashboard.this.dashboard_name
}
