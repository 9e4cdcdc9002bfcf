# The way into the pipeline: S3 object-created events -> (optional SNS fan-out) -> input
# queue, buffered by SQS, retried max_receive_count times, then parked in the input DLQ.
# Records that a plugin rejects are not retried: the Lambda sends them to the rejects queue.

locals {
  # One S3 notification cannot target both a queue and a topic with overlapping filters,
  # so fan-out goes S3 -> topic -> queue rather than S3 -> {queue, topic}.
  events_source_arn = var.enable_input_events_topic ? aws_sns_topic.input_events[0].arn : var.input_bucket_arn
}

resource "aws_sqs_queue" "input_dlq" {
  name                      = "${var.name}-input-dlq"
  message_retention_seconds = var.dlq_message_retention_seconds
  sqs_managed_sse_enabled   = true
  tags                      = var.tags
}

resource "aws_sqs_queue" "input" {
  name                       = "${var.name}-input"
  visibility_timeout_seconds = var.visibility_timeout_seconds
  message_retention_seconds  = var.message_retention_seconds
  receive_wait_time_seconds  = 20
  sqs_managed_sse_enabled    = true
  redrive_policy = jsonencode({
    deadLetterTargetArn = aws_sqs_queue.input_dlq.arn
    maxReceiveCount     = var.max_receive_count
  })
  tags = var.tags
}

# Records rejected by plugins (invalid data, not faults): inspected and replayed by people.
resource "aws_sqs_queue" "rejects" {
  name                      = "${var.name}-rejects"
  message_retention_seconds = var.dlq_message_retention_seconds
  sqs_managed_sse_enabled   = true
  tags                      = var.tags
}

resource "aws_sqs_queue_policy" "input" {
  queue_url = aws_sqs_queue.input.id
  policy = jsonencode({
    Version = "2012-10-17"
    Statement = [
      {
        Sid       = var.enable_input_events_topic ? "AllowInputEventsTopic" : "AllowInputBucket"
        Effect    = "Allow"
        Principal = { Service = var.enable_input_events_topic ? "sns.amazonaws.com" : "s3.amazonaws.com" }
        Action    = "sqs:SendMessage"
        Resource  = aws_sqs_queue.input.arn
        Condition = {
          ArnEquals    = { "aws:SourceArn" = local.events_source_arn }
          StringEquals = { "aws:SourceAccount" = var.account_id }
        }
      },
    ]
  })
}

resource "aws_sns_topic" "input_events" {
  count = var.enable_input_events_topic ? 1 : 0

  name              = "${var.name}-input-events"
  kms_master_key_id = var.sns_kms_key_arn
  tags              = var.tags
}

resource "aws_sns_topic_policy" "input_events" {
  count = var.enable_input_events_topic ? 1 : 0

  arn = aws_sns_topic.input_events[0].arn
  policy = jsonencode({
    Version = "2012-10-17"
    Statement = [{
      Sid       = "AllowInputBucket"
      Effect    = "Allow"
      Principal = { Service = "s3.amazonaws.com" }
      Action    = "sns:Publish"
      Resource  = aws_sns_topic.input_events[0].arn
      Condition = {
        ArnEquals    = { "aws:SourceArn" = var.input_bucket_arn }
        StringEquals = { "aws:SourceAccount" = var.account_id }
      }
    }]
  })
}

resource "aws_sns_topic_subscription" "input_events_to_queue" {
  count = var.enable_input_events_topic ? 1 : 0

  topic_arn = aws_sns_topic.input_events[0].arn
  protocol  = "sqs"
  endpoint  = aws_sqs_queue.input.arn
  # The queue receives the S3 event JSON itself, exactly as with direct delivery.
  raw_message_delivery = true

  depends_on = [aws_sqs_queue_policy.input]
}

resource "aws_s3_bucket_notification" "input" {
  bucket = var.input_bucket_id

  dynamic "queue" {
    for_each = var.enable_input_events_topic ? [] : [aws_sqs_queue.input.arn]
    content {
      id            = "weir-input"
      queue_arn     = queue.value
      events        = ["s3:ObjectCreated:*"]
      filter_prefix = var.filter_prefix
      filter_suffix = var.filter_suffix
    }
  }

  dynamic "topic" {
    for_each = var.enable_input_events_topic ? [aws_sns_topic.input_events[0].arn] : []
    content {
      id            = "weir-input"
      topic_arn     = topic.value
      events        = ["s3:ObjectCreated:*"]
      filter_prefix = var.filter_prefix
      filter_suffix = var.filter_suffix
    }
  }

  depends_on = [aws_sqs_queue_policy.input, aws_sns_topic_policy.input_events]
}
