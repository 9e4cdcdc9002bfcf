# The ways into the pipelines. Each pipeline has an input queue (its function's event
# source: records sent to it directly, and S3 events) that retries a batch
# max_receive_count times and then parks it in the pipeline's input DLQ, and a rejects
# queue where its function sends the records its plugins refuse (not retried).
# The input bucket is shared: its one notification sends each pipeline's prefix/suffix
# filter to that pipeline's queue, or to its input-events topic (S3 -> SNS -> queue,
# for other subscribers of the same events).

locals {
  s3_pipelines  = { for k, p in var.pipelines : k => p.s3 if p.s3 != null }
  sns_pipelines = { for k, s in local.s3_pipelines : k => s if s.via_sns }
}

resource "aws_sqs_queue" "input_dlq" {
  for_each = var.pipelines

  name                      = "${var.name}-${each.key}-input-dlq"
  message_retention_seconds = var.dlq_message_retention_seconds
  sqs_managed_sse_enabled   = true
  tags                      = var.tags
}

resource "aws_sqs_queue" "input" {
  for_each = var.pipelines

  name                       = "${var.name}-${each.key}-input"
  visibility_timeout_seconds = each.value.visibility_timeout_seconds
  message_retention_seconds  = var.message_retention_seconds
  receive_wait_time_seconds  = 20
  sqs_managed_sse_enabled    = true
  redrive_policy = jsonencode({
    deadLetterTargetArn = aws_sqs_queue.input_dlq[each.key].arn
    maxReceiveCount     = each.value.max_receive_count
  })
  tags = var.tags
}

# Records rejected by plugins (invalid data, not faults): inspected and replayed by people.
resource "aws_sqs_queue" "rejects" {
  for_each = var.pipelines

  name                      = each.value.rejects_queue_name
  message_retention_seconds = var.dlq_message_retention_seconds
  sqs_managed_sse_enabled   = true
  tags                      = var.tags
}

# Only a pipeline with an S3 input lets a service send to its queue: the bucket itself,
# or the pipeline's input-events topic.
resource "aws_sqs_queue_policy" "input" {
  for_each = local.s3_pipelines

  queue_url = aws_sqs_queue.input[each.key].id
  policy = jsonencode({
    Version = "2012-10-17"
    Statement = [
      {
        Sid       = each.value.via_sns ? "AllowInputEventsTopic" : "AllowInputBucket"
        Effect    = "Allow"
        Principal = { Service = each.value.via_sns ? "sns.amazonaws.com" : "s3.amazonaws.com" }
        Action    = "sqs:SendMessage"
        Resource  = aws_sqs_queue.input[each.key].arn
        Condition = {
          ArnEquals    = { "aws:SourceArn" = each.value.via_sns ? aws_sns_topic.input_events[each.key].arn : var.input_bucket_arn }
          StringEquals = { "aws:SourceAccount" = var.account_id }
        }
      },
    ]
  })
}

resource "aws_sns_topic" "input_events" {
  for_each = local.sns_pipelines

  name              = "${var.name}-${each.key}-input-events"
  kms_master_key_id = var.sns_kms_key_arn
  tags              = var.tags
}

resource "aws_sns_topic_policy" "input_events" {
  for_each = local.sns_pipelines

  arn = aws_sns_topic.input_events[each.key].arn
  policy = jsonencode({
    Version = "2012-10-17"
    Statement = [{
      Sid       = "AllowInputBucket"
      Effect    = "Allow"
      Principal = { Service = "s3.amazonaws.com" }
      Action    = "sns:Publish"
      Resource  = aws_sns_topic.input_events[each.key].arn
      Condition = {
        ArnEquals    = { "aws:SourceArn" = var.input_bucket_arn }
        StringEquals = { "aws:SourceAccount" = var.account_id }
      }
    }]
  })
}

resource "aws_sns_topic_subscription" "input_events_to_queue" {
  for_each = local.sns_pipelines

  topic_arn = aws_sns_topic.input_events[each.key].arn
  protocol  = "sqs"
  endpoint  = aws_sqs_queue.input[each.key].arn
  # The queue receives the S3 event JSON itself, exactly as with direct delivery.
  raw_message_delivery = true

  depends_on = [aws_sqs_queue_policy.input]
}

# One bucket has one notification configuration: every pipeline's rules are in it.
# A pipeline's rules go to its queue, or to its topic when via_sns (S3 forbids a queue
# and a topic rule with overlapping filters, so fan-out is S3 -> topic -> queue).
resource "aws_s3_bucket_notification" "input" {
  count = length(var.rules) > 0 ? 1 : 0

  bucket = var.input_bucket_id

  dynamic "queue" {
    for_each = [for r in var.rules : r if !r.via_sns]
    content {
      id            = queue.value.id
      queue_arn     = aws_sqs_queue.input[queue.value.pipeline].arn
      events        = ["s3:ObjectCreated:*"]
      filter_prefix = queue.value.prefix
      filter_suffix = queue.value.suffix
    }
  }

  dynamic "topic" {
    for_each = [for r in var.rules : r if r.via_sns]
    content {
      id            = topic.value.id
      topic_arn     = aws_sns_topic.input_events[topic.value.pipeline].arn
      events        = ["s3:ObjectCreated:*"]
      filter_prefix = topic.value.prefix
      filter_suffix = topic.value.suffix
    }
  }

  depends_on = [aws_sqs_queue_policy.input, aws_sns_topic_policy.input_events]
}
