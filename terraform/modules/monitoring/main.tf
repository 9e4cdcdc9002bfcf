# Alarms on everything that means a pipeline's records are not flowing, all to the shared
# alerts topic, and one dashboard with a row of the same metrics per pipeline.

locals {
  # Six alarms per pipeline, keyed "<pipeline>/<what it watches>".
  alarms = merge([for k, p in var.pipelines : {
    "${k}/dlq-depth" = {
      pipeline    = k
      kind        = "dlq-depth"
      description = "Pipeline ${k}: messages are in the input dead-letter queue (batches failed max_receive_count times)."
      namespace   = "AWS/SQS"
      metric      = "ApproximateNumberOfMessagesVisible"
      statistic   = "Maximum"
      dimensions  = { QueueName = p.input_dlq_name }
      threshold   = var.dlq_depth_threshold
    }
    "${k}/rejects-depth" = {
      pipeline    = k
      kind        = "rejects-depth"
      description = "Pipeline ${k}: records rejected by plugins are piling up in the rejects queue."
      namespace   = "AWS/SQS"
      metric      = "ApproximateNumberOfMessagesVisible"
      statistic   = "Maximum"
      dimensions  = { QueueName = p.rejects_queue_name }
      threshold   = var.rejects_depth_threshold
    }
    "${k}/function-errors" = {
      pipeline    = k
      kind        = "function-errors"
      description = "Pipeline ${k}: the function failed invocations."
      namespace   = "AWS/Lambda"
      metric      = "Errors"
      statistic   = "Sum"
      dimensions  = { FunctionName = p.function_name }
      threshold   = var.errors_threshold
    }
    "${k}/function-throttles" = {
      pipeline    = k
      kind        = "function-throttles"
      description = "Pipeline ${k}: the function was throttled (reserved or account concurrency reached)."
      namespace   = "AWS/Lambda"
      metric      = "Throttles"
      statistic   = "Sum"
      dimensions  = { FunctionName = p.function_name }
      threshold   = var.throttles_threshold
    }
    "${k}/oldest-message-age" = {
      pipeline    = k
      kind        = "oldest-message-age"
      description = "Pipeline ${k}: the input queue is not drained (its oldest message is too old)."
      namespace   = "AWS/SQS"
      metric      = "ApproximateAgeOfOldestMessage"
      statistic   = "Maximum"
      dimensions  = { QueueName = p.input_queue_name }
      threshold   = var.oldest_message_age_threshold_seconds
    }
    "${k}/plugin-refusals" = {
      pipeline    = k
      kind        = "plugin-refusals"
      description = "Pipeline ${k}: plugins refused records (metric emitted by the weir host)."
      namespace   = "Weir"
      metric      = "PluginRefusals"
      statistic   = "Sum"
      dimensions  = { Pipeline = k }
      threshold   = var.plugin_refusals_threshold
    }
  }]...)

  # One row of five metric widgets per pipeline, then the state of every alarm.
  pipeline_rows = [for i, k in sort(keys(var.pipelines)) : [
    {
      type = "metric", x = 0, y = 6 * i, width = 5, height = 6
      properties = {
        title  = "${k}: invocations, errors, throttles"
        region = var.region
        stat   = "Sum"
        period = var.period_seconds
        metrics = [
          ["AWS/Lambda", "Invocations", "FunctionName", var.pipelines[k].function_name],
          ["AWS/Lambda", "Errors", "FunctionName", var.pipelines[k].function_name],
          ["AWS/Lambda", "Throttles", "FunctionName", var.pipelines[k].function_name],
        ]
      }
    },
    {
      type = "metric", x = 5, y = 6 * i, width = 5, height = 6
      properties = {
        title  = "${k}: duration (ms)"
        region = var.region
        period = var.period_seconds
        metrics = [
          ["AWS/Lambda", "Duration", "FunctionName", var.pipelines[k].function_name, { stat = "p99" }],
          ["AWS/Lambda", "Duration", "FunctionName", var.pipelines[k].function_name, { stat = "Average" }],
        ]
      }
    },
    {
      type = "metric", x = 10, y = 6 * i, width = 5, height = 6
      properties = {
        title  = "${k}: queue depth"
        region = var.region
        stat   = "Maximum"
        period = var.period_seconds
        metrics = [
          ["AWS/SQS", "ApproximateNumberOfMessagesVisible", "QueueName", var.pipelines[k].input_queue_name],
          ["AWS/SQS", "ApproximateNumberOfMessagesVisible", "QueueName", var.pipelines[k].input_dlq_name],
          ["AWS/SQS", "ApproximateNumberOfMessagesVisible", "QueueName", var.pipelines[k].rejects_queue_name],
        ]
      }
    },
    {
      type = "metric", x = 15, y = 6 * i, width = 5, height = 6
      properties = {
        title   = "${k}: age of oldest input message (s)"
        region  = var.region
        stat    = "Maximum"
        period  = var.period_seconds
        metrics = [["AWS/SQS", "ApproximateAgeOfOldestMessage", "QueueName", var.pipelines[k].input_queue_name]]
      }
    },
    {
      type = "metric", x = 20, y = 6 * i, width = 4, height = 6
      properties = {
        title   = "${k}: plugin refusals"
        region  = var.region
        stat    = "Sum"
        period  = var.period_seconds
        metrics = [["Weir", "PluginRefusals", "Pipeline", k]]
      }
    },
  ]]
}

resource "aws_cloudwatch_metric_alarm" "this" {
  for_each = local.alarms

  alarm_name          = "${var.name}-${each.value.pipeline}-${each.value.kind}"
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
    widgets = concat(flatten(local.pipeline_rows), [
      {
        type = "alarm", x = 0, y = 6 * length(var.pipelines), width = 24, height = 6
        properties = {
          title  = "Alarms"
          alarms = sort([for a in aws_cloudwatch_metric_alarm.this : a.arn])
        }
      },
    ])
  })
}
