output "pipelines" {
  description = "Per pipeline: its input queue (URL, ARN, name, redrive policy, visibility timeout), input DLQ, rejects queue and input-events topic (null without one)."
  value = { for k, p in var.pipelines : k => {
    input_queue_url                        = aws_sqs_queue.input[k].id
    input_queue_arn                        = aws_sqs_queue.input[k].arn
    input_queue_name                       = aws_sqs_queue.input[k].name
    input_queue_redrive_policy             = jsondecode(aws_sqs_queue.input[k].redrive_policy)
    input_queue_visibility_timeout_seconds = aws_sqs_queue.input[k].visibility_timeout_seconds
    input_dlq_url                          = aws_sqs_queue.input_dlq[k].id
    input_dlq_arn                          = aws_sqs_queue.input_dlq[k].arn
    input_dlq_name                         = aws_sqs_queue.input_dlq[k].name
    rejects_queue_url                      = aws_sqs_queue.rejects[k].id
    rejects_queue_arn                      = aws_sqs_queue.rejects[k].arn
    rejects_queue_name                     = aws_sqs_queue.rejects[k].name
    input_events_topic_arn                 = contains(keys(local.sns_pipelines), k) ? aws_sns_topic.input_events[k].arn : null
  } }
}

output "notification" {
  description = "The input bucket's one notification as configured: its queue and topic rules (empty without any S3 input)."
  value = {
    queues = length(aws_s3_bucket_notification.input) > 0 ? aws_s3_bucket_notification.input[0].queue : []
    topics = length(aws_s3_bucket_notification.input) > 0 ? aws_s3_bucket_notification.input[0].topic : []
  }
}
