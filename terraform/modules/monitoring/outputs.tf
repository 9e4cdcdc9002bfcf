output "alarms" {
  description = "Metric and actions of every alarm, keyed by pipeline, then by what it watches."
  value = { for k in keys(var.pipelines) : k => {
    for key, a in aws_cloudwatch_metric_alarm.this : local.alarms[key].kind => {
      alarm_name    = a.alarm_name
      namespace     = a.namespace
      metric_name   = a.metric_name
      dimensions    = a.dimensions
      alarm_actions = a.alarm_actions
      ok_actions    = a.ok_actions
    } if local.alarms[key].pipeline == k
  } }
}

output "dashboard_name" {
  description = "Name of the CloudWatch dashboard."
  value       = aws_cloudwatch_dashboard.this.dashboard_name
}
