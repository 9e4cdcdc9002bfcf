output "notify_topic_arn" {
  description = "ARN of the notifications topic."
  value       = aws_sns_topic.notify.arn
}

output "alerts_topic_arn" {
  description = "ARN of the alerts topic."
  value       = aws_sns_topic.alerts.arn
}

output "example_subscriber_queue_url" {
  description = "URL of the example filtered subscriber queue, or null."
  value       = var.create_example_subscription ? aws_sqs_queue.example_subscriber[0].id : null
}

output "example_subscription_arn" {
  description = "ARN of the example filtered subscription, or null."
  value       = var.create_example_subscription ? aws_sns_topic_subscription.example_subscriber[0].arn : null
}

output "example_filter_policy" {
  description = "Filter policy of the example subscription, decoded, or null."
  value       = var.create_example_subscription ? jsondecode(aws_sns_topic_subscription.example_subscriber[0].filter_policy) : null
}
