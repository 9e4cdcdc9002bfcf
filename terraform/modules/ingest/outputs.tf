output "input_queue_arn" {
  description = "ARN of the input queue (the function's event source)."
  value       = aws_sqs_queue.input.arn
}

output "input_queue_url" {
  description = "URL of the input queue."
  value       = aws_sqs_queue.input.id
}

output "input_queue_name" {
  description = "Name of the input queue."
  value       = aws_sqs_queue.input.name
}

output "input_queue_redrive_policy" {
  description = "Redrive policy of the input queue, decoded."
  value       = jsondecode(aws_sqs_queue.input.redrive_policy)
}

output "input_queue_visibility_timeout_seconds" {
  description = "Visibility timeout of the input queue, in seconds."
  value       = aws_sqs_queue.input.visibility_timeout_seconds
}

output "input_dlq_arn" {
  description = "ARN of the input dead-letter queue."
  value       = aws_sqs_queue.input_dlq.arn
}

output "input_dlq_url" {
  description = "URL of the input dead-letter queue."
  value       = aws_sqs_queue.input_dlq.id
}

output "input_dlq_name" {
  description = "Name of the input dead-letter queue."
  value       = aws_sqs_queue.input_dlq.name
}

output "rejects_queue_arn" {
  description = "ARN of the queue for records rejected by plugins."
  value       = aws_sqs_queue.rejects.arn
}

output "rejects_queue_url" {
  description = "URL of the queue for records rejected by plugins."
  value       = aws_sqs_queue.rejects.id
}

output "rejects_queue_name" {
  description = "Name of the queue for records rejected by plugins."
  value       = aws_sqs_queue.rejects.name
}

output "input_events_topic_arn" {
  description = "ARN of the input events fan-out topic, or null when disabled."
  value       = var.enable_input_events_topic ? aws_sns_topic.input_events[0].arn : null
}

output "notification" {
  description = "The bucket notification as configured: destination kind, prefix and suffix."
  value = {
    destination = var.enable_input_events_topic ? "sns" : "sqs"
    queues      = aws_s3_bucket_notification.input.queue
    topics      = aws_s3_bucket_notification.input.topic
  }
}
