# Alarms on everything that means records are not flowing, all to the alerts topic,
# and one dashboard showing the same metrics side by side.

locals {
  alarms = {
    dlq-depth = {
      description = "Messages are in the input dead-letter queue: batches failed max_receive_count times."
      namespace   = "AWS/SQS"
      metric      = "ApproximateNumberOfMessagesVisible"
      statistic   = "Maximum"
      dimensions  = { QueueName = var.input_dlq_name }
      threshold   = var.dlq_depth_threshold
    }
    rejects-depth = {
      description = "Records rejected by plugins are piling up in the rejects queue."
      namespace   = "AWS/SQS"
      metric      = "ApproximateNumberOfMessagesVisible"
      statistic   = "Maximum"
      dimensions  = { QueueName = var.rejects_queue_name }
      threshold   = var.rejects_depth_threshold
    }
    function-errors = {
      description = "The weir function failed invocations."
      namespace   = "AWS/Lambda"
      metric      = "Errors"
      statistic   = "Sum"
      dimensions  = { FunctionName = var.function_name }
      threshold   = var.errors_threshold
    }
    function-throttles = {
      description = "The weir function was throttled (reserved or account concurrency reached)."
      namespace   = "AWS/Lambda"
      metric      = "Throttles"
      statistic   = "Sum"
      dimensions  = { FunctionName = var.function_name }
      threshold   = var.throttles_threshold
    }
    oldest-message-age = {
      description = "The input queue is not drained: its oldest message is too old."
      namespace   = "AWS/SQS"
      metric      = "ApproximateAgeOfOldestMessage"
      statistic   = "Maximum"
      dimensions  = { QueueName = var.input_queue_name }
      threshold   = var.oldest_message_age_threshold_seconds
    }
    plugin-refusals = {
      description = "Plugins refused records (metric emitted by the weir host)."
      namespace   = "Weir"
      metric      = "PluginRefusals"
      statistic   = "Sum"
      dimensions  = { Pipeline = var.pipeline }
      threshold   = var.plugin_refusals_threshold
    }
  }
}

resource "aws_cloudwatch_metric_alarm" "this" {
  for_each = local.alarms

  alarm_name          = "${var.name}-${each.key}"
  alarm_description   = each.value.description
  namespace           = each.value.namespace
  metric_name         = each.value.metric
  statistic           = each.value.statistic
  dimensions          = each.value.dimensions
  period              = var.period_seconds
  evaluation_periods  = 1
  comparison_operator = "GreaterThanThreshold"
  threshold           = each.value.threshold
  treat_missing_data  = "notBreaching"
  alarm_actions       = [var.alerts_topic_arn]
  ok_actions          = [var.alerts_topic_arn]
  tags                = var.tags
}

resource "aws_cloudwatch_dashboard" "this" {
  dashboard_name = var.name
  dashboard_body = jsonencode({
    widgets = [
      {
        type = "metric", x = 0, y = 0, width = 12, height = 6
        properties = {
          title  = "Function invocations, errors, throttles"
          region = var.region
          stat   = "Sum"
          period = var.period_seconds
          metrics = [
            ["AWS/Lambda", "Invocations", "FunctionName", var.function_name],
            ["AWS/Lambda", "Errors", "FunctionName", var.function_name],
            ["AWS/Lambda", "Throttles", "FunctionName", var.function_name],
          ]
        }
      },
      {
        type = "metric", x = 12, y = 0, width = 12, height = 6
        properties = {
          title   = "Function duration (ms)"
          region  = var.region
          period  = var.period_seconds
          metrics = [["AWS/Lambda", "Duration", "FunctionName", var.function_name, { stat = "p99" }], ["AWS/Lambda", "Duration", "FunctionName", var.function_name, { stat = "Average" }]]
        }
      },
      {
        type = "metric", x = 0, y = 6, width = 12, height = 6
        properties = {
          title  = "Queue depth"
          region = var.region
          stat   = "Maximum"
          period = var.period_seconds
          metrics = [
            ["AWS/SQS", "ApproximateNumberOfMessagesVisible", "QueueName", var.input_queue_name],
            ["AWS/SQS", "ApproximateNumberOfMessagesVisible", "QueueName", var.input_dlq_name],
            ["AWS/SQS", "ApproximateNumberOfMessagesVisible", "QueueName", var.rejects_queue_name],
          ]
        }
      },
      {
        type = "metric", x = 12, y = 6, width = 12, height = 6
        properties = {
          title   = "Age of oldest input message (s)"
          region  = var.region
          stat    = "Maximum"
          period  = var.period_seconds
          metrics = [["AWS/SQS", "ApproximateAgeOfOldestMessage", "QueueName", var.input_queue_name]]
        }
      },
      {
        type = "metric", x = 0, y = 12, width = 12, height = 6
        properties = {
          title   = "Plugin refusals"
          region  = var.region
          stat    = "Sum"
          period  = var.period_seconds
          metrics = [["Weir", "PluginRefusals", "Pipeline", var.pipeline]]
        }
      },
      {
        type = "alarm", x = 12, y = 12, width = 12, height = 6
        properties = {
          title  = "Alarms"
          alarms = [for a in aws_cloudwatch_metric_alarm.this : a.arn]
        }
      },
    ]
  })
}
