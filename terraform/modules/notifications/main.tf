# Fan-out of what weir did (notifications topic, published to by the function) and of
# what went wrong (alerts topic, published to by CloudWatch alarms).

resource "aws_sns_topic" "notify" {
  name              = "${var.name}-notify"
  kms_master_key_id = var.sns_kms_key_arn
  tags              = var.tags
}

resource "aws_sns_topic" "alerts" {
  name              = "${var.name}-alerts"
  kms_master_key_id = var.sns_kms_key_arn
  tags              = var.tags
}

resource "aws_sns_topic_policy" "alerts" {
  arn = aws_sns_topic.alerts.arn
  policy = jsonencode({
    Version = "2012-10-17"
    Statement = [{
      Sid       = "AllowCloudWatchAlarms"
      Effect    = "Allow"
      Principal = { Service = "cloudwatch.amazonaws.com" }
      Action    = "sns:Publish"
      Resource  = aws_sns_topic.alerts.arn
      Condition = { StringEquals = { "aws:SourceAccount" = var.account_id } }
    }]
  })
}

resource "aws_sns_topic_subscription" "alerts_email" {
  count = var.alerts_email == null ? 0 : 1

  topic_arn = aws_sns_topic.alerts.arn
  protocol  = "email"
  endpoint  = var.alerts_email
}

# Example consumer: only messages whose attributes match the filter policy arrive.
resource "aws_sqs_queue" "example_subscriber" {
  count = var.create_example_subscription ? 1 : 0

  name                    = "${var.name}-notify-example"
  sqs_managed_sse_enabled = true
  tags                    = var.tags
}

resource "aws_sqs_queue_policy" "example_subscriber" {
  count = var.create_example_subscription ? 1 : 0

  queue_url = aws_sqs_queue.example_subscriber[0].id
  policy = jsonencode({
    Version = "2012-10-17"
    Statement = [{
      Sid       = "AllowNotifyTopic"
      Effect    = "Allow"
      Principal = { Service = "sns.amazonaws.com" }
      Action    = "sqs:SendMessage"
      Resource  = aws_sqs_queue.example_subscriber[0].arn
      Condition = { ArnEquals = { "aws:SourceArn" = aws_sns_topic.notify.arn } }
    }]
  })
}

resource "aws_sns_topic_subscription" "example_subscriber" {
  count = var.create_example_subscription ? 1 : 0

  topic_arn            = aws_sns_topic.notify.arn
  protocol             = "sqs"
  endpoint             = aws_sqs_queue.example_subscriber[0].arn
  filter_policy        = jsonencode(var.example_filter_policy)
  filter_policy_scope  = "MessageAttributes"
  raw_message_delivery = true

  depends_on = [aws_sqs_queue_policy.example_subscriber]
}
