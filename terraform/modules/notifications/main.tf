# Fan-out of what the pipelines did (the topics their plans name, published to by each
# pipeline's function) and of what went wrong (the shared alerts topic, published to by
# CloudWatch alarms).

resource "aws_sns_topic" "this" {
  for_each = var.topics

  name       = each.key
  fifo_topic = each.value.fifo
  # The function need not compute a deduplication ID for a FIFO topic.
  content_based_deduplication = each.value.fifo
  kms_master_key_id           = var.sns_kms_key_arn
  tags                        = var.tags
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
