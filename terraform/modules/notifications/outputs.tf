output "topic_arns" {
  description = "ARNs of the pipelines' topics, keyed by topic name."
  value       = { for k, t in aws_sns_topic.this : k => t.arn }
}

output "alerts_topic_arn" {
  description = "ARN of the alerts topic."
  value       = aws_sns_topic.alerts.arn
}
