# Wiring of the whole module, planned and "applied" against a mocked AWS provider:
# no credentials, no network. Run with `terraform test` from terraform/.

mock_provider "aws" {
  mock_data "aws_caller_identity" {
    defaults = { account_id = "123456789012" }
  }
  mock_data "aws_region" {
    defaults = { name = "eu-west-1" }
  }
  mock_data "aws_partition" {
    defaults = { partition = "aws" }
  }
}

# Distinct, well-formed ARNs where the provider validates them or the asserts compare them.
override_resource {
  target = module.function.aws_iam_role.this
  values = { arn = "arn:aws:iam::123456789012:role/weir-main", id = "weir-main", name = "weir-main" }
}

override_resource {
  target = module.notifications.aws_sns_topic.notify
  values = { arn = "arn:aws:sns:eu-west-1:123456789012:weir-main-notify", id = "arn:aws:sns:eu-west-1:123456789012:weir-main-notify" }
}

override_resource {
  target = module.notifications.aws_sns_topic.alerts
  values = { arn = "arn:aws:sns:eu-west-1:123456789012:weir-main-alerts", id = "arn:aws:sns:eu-west-1:123456789012:weir-main-alerts" }
}

override_resource {
  target = module.ingest.aws_sns_topic.input_events
  values = { arn = "arn:aws:sns:eu-west-1:123456789012:weir-main-input-events", id = "arn:aws:sns:eu-west-1:123456789012:weir-main-input-events" }
}

override_resource {
  target = module.ingest.aws_sqs_queue.input
  values = { arn = "arn:aws:sqs:eu-west-1:123456789012:weir-main-input", id = "https://sqs.eu-west-1.amazonaws.com/123456789012/weir-main-input" }
}

override_resource {
  target = module.ingest.aws_sqs_queue.input_dlq
  values = { arn = "arn:aws:sqs:eu-west-1:123456789012:weir-main-input-dlq", id = "https://sqs.eu-west-1.amazonaws.com/123456789012/weir-main-input-dlq" }
}

override_resource {
  target = module.ingest.aws_sqs_queue.rejects
  values = { arn = "arn:aws:sqs:eu-west-1:123456789012:weir-main-rejects", id = "https://sqs.eu-west-1.amazonaws.com/123456789012/weir-main-rejects" }
}

override_resource {
  target = module.function.aws_cloudwatch_log_group.this
  values = { arn = "arn:aws:logs:eu-west-1:123456789012:log-group:/aws/lambda/weir-main" }
}

variables {
  lambda_zip_path = "tests/fixtures/missing-bootstrap.zip"
}

run "defaults_wiring" {
  command = apply

  # Event source: partial batch failures, batch settings from variables.
  assert {
    condition     = output.event_source_mapping.function_response_types == toset(["ReportBatchItemFailures"])
    error_message = "The SQS event source mapping must report batch item failures."
  }

  assert {
    condition     = output.event_source_mapping.batch_size == var.batch_size && output.event_source_mapping.maximum_batching_window_in_seconds == var.batching_window_seconds
    error_message = "Batch size and batching window must come from the variables."
  }

  assert {
    condition     = output.event_source_mapping.event_source_arn == output.input_queue_arn
    error_message = "The event source must be the input queue."
  }

  # Redrive: input queue -> input DLQ after max receives.
  assert {
    condition     = output.input_queue_redrive_policy.deadLetterTargetArn == output.input_dlq_arn
    error_message = "The input queue must redrive to the input DLQ."
  }

  assert {
    condition     = output.input_queue_redrive_policy.maxReceiveCount == var.queue_max_receive_count
    error_message = "maxReceiveCount must be queue_max_receive_count."
  }

  # Visibility timeout: at least six times the function timeout (default exactly six).
  assert {
    condition     = output.input_queue_visibility_timeout_seconds >= 6 * var.lambda_timeout_seconds
    error_message = "The input queue's visibility timeout must be at least 6 x the function timeout."
  }

  assert {
    condition     = output.input_queue_visibility_timeout_seconds == 360
    error_message = "The default visibility timeout must be 6 x 60 s."
  }

  # Every alarm notifies the alerts topic, on alarm and on OK.
  assert {
    condition     = length(output.alarms) == 6
    error_message = "Expected six alarms: dlq-depth, rejects-depth, function-errors, function-throttles, oldest-message-age, plugin-refusals."
  }

  assert {
    condition     = alltrue([for a in output.alarms : a.alarm_actions == toset([output.alerts_topic_arn]) && a.ok_actions == toset([output.alerts_topic_arn])])
    error_message = "Every alarm must notify the alerts topic, and only it."
  }

  assert {
    condition = (
      output.alarms["plugin-refusals"].namespace == "Weir" &&
      output.alarms["plugin-refusals"].metric_name == "PluginRefusals" &&
      output.alarms["plugin-refusals"].dimensions == tomap({ Pipeline = var.pipeline })
    )
    error_message = "The plugin refusals alarm must watch Weir/PluginRefusals for this pipeline."
  }

  assert {
    condition = (
      output.alarms["dlq-depth"].dimensions.QueueName == "weir-main-input-dlq" &&
      output.alarms["oldest-message-age"].metric_name == "ApproximateAgeOfOldestMessage" &&
      output.alarms["function-errors"].metric_name == "Errors" &&
      output.alarms["function-throttles"].metric_name == "Throttles"
    )
    error_message = "Alarms must watch the DLQ depth, function errors and throttles and the age of the oldest message."
  }

  # Object-created notifications go straight to the input queue, filtered.
  assert {
    condition     = output.input_notification.destination == "sqs" && length(output.input_notification.queues) == 1 && length(output.input_notification.topics) == 0
    error_message = "By default the input bucket must notify the input queue only."
  }

  assert {
    condition = alltrue([for q in output.input_notification.queues :
      q.queue_arn == output.input_queue_arn && q.filter_prefix == var.input_prefix && q.filter_suffix == var.input_suffix && q.events == toset(["s3:ObjectCreated:*"])
    ])
    error_message = "The notification must send object-created events with the configured prefix and suffix to the input queue."
  }

  # Example subscriber gets only this pipeline's messages.
  assert {
    condition     = output.notify_example_filter_policy == { pipeline = ["main"] }
    error_message = "The example subscription must filter on the pipeline message attribute."
  }

  # IAM: exact actions, exact resources.
  assert {
    condition     = alltrue(flatten([for s in output.function_policy_statements : [for a in s.Action : !strcontains(a, "*")]]))
    error_message = "No IAM action may contain '*'."
  }

  assert {
    condition = alltrue(flatten([for s in output.function_policy_statements : [for r in s.Resource :
      # No '*' at all, except a single trailing key wildcard under an exact S3 bucket
      # (and prefix) or an exact log group's streams: object keys cannot be enumerated.
      !strcontains(r, "*") || (
        length(regexall("\\*", r)) == 1 && (
          can(regex("^arn:aws:s3:::[a-z0-9][a-z0-9.-]+/([^*]*/)?\\*$", r)) ||
          can(regex("^arn:aws:logs:[a-z0-9-]+:[0-9]{12}:log-group:[^*:]+:log-stream:\\*$", r))
        )
      )
    ]]))
    error_message = "IAM resources must be exact ARNs (a trailing key wildcard under an exact bucket or log group is the only exception)."
  }

  assert {
    condition     = alltrue([for s in output.function_policy_statements : s.Effect == "Allow" && length(s.Resource) > 0 && !contains(s.Resource, "*")])
    error_message = "Every statement must name its resources."
  }

  assert {
    condition     = !anytrue(flatten([for s in output.function_policy_statements : [for a in s.Action : startswith(a, "kms:")]]))
    error_message = "Without a customer-managed key the role must not have KMS permissions."
  }

  # The environment is exactly the contract in lambda/env-vars.json.
  assert {
    condition     = toset(keys(output.function_environment)) == toset([for v in jsondecode(file("../lambda/env-vars.json")).variables : v.name])
    error_message = "The function environment names must equal the names in lambda/env-vars.json."
  }

  assert {
    condition = (
      output.function_environment.WEIR_PIPELINE == "main" &&
      output.function_environment.WEIR_MANIFEST_KEY == "pipelines/main/manifest.json" &&
      output.function_environment.WEIR_PLUGINS_BUCKET == output.plugins_bucket &&
      output.function_environment.WEIR_REJECTS_QUEUE_URL == output.rejects_queue_url &&
      output.function_environment.WEIR_NOTIFY_TOPIC_ARN == output.notify_topic_arn &&
      output.function_environment.WEIR_RESULTS_TABLE == output.results_table &&
      output.function_environment.WEIR_AGGREGATES_TABLE == output.aggregates_table &&
      output.function_environment.WEIR_OUTPUT_BUCKET == output.output_bucket &&
      output.function_environment.WEIR_OUTPUT_PREFIX == "processed" &&
      output.function_environment.WEIR_REFRESH_SECONDS == "30" &&
      output.function_environment.WEIR_SIGNING_KEYS == "" &&
      output.function_environment.WEIR_CACHE_DIR == "/tmp/weir-cache"
    )
    error_message = "The function environment must point at the resources this module created."
  }

  assert {
    condition     = output.plugins_bucket == "weir-main-plugins-123456789012-eu-west-1"
    error_message = "Bucket names default to <name>-<pipeline>-<role>-<account>-<region>."
  }

  assert {
    condition     = output.athena_workgroup == "weir-main" && output.glue_database == "weir_main" && output.output_location == "s3://weir-main-output-123456789012-eu-west-1/processed/"
    error_message = "Glue and Athena must cover the output prefix."
  }
}

run "visibility_timeout_below_six_times_timeout_is_refused" {
  command = plan

  variables {
    lambda_timeout_seconds           = 60
    queue_visibility_timeout_seconds = 300
  }

  expect_failures = [var.queue_visibility_timeout_seconds]
}

run "explicit_visibility_timeout_is_used" {
  command = plan

  variables {
    lambda_timeout_seconds           = 30
    queue_visibility_timeout_seconds = 900
  }

  assert {
    condition     = output.input_queue_visibility_timeout_seconds == 900
    error_message = "An explicit visibility timeout of at least 6 x the timeout must be used as given."
  }
}

run "batch_above_ten_needs_a_window" {
  command = plan

  variables {
    batch_size              = 100
    batching_window_seconds = 0
  }

  expect_failures = [var.batching_window_seconds]
}

run "input_events_fan_out_through_sns" {
  command = apply

  variables {
    enable_input_events_topic = true
    input_prefix              = "landing/"
    input_suffix              = ".json"
    queue_max_receive_count   = 3
  }

  assert {
    condition     = output.input_notification.destination == "sns" && length(output.input_notification.queues) == 0 && length(output.input_notification.topics) == 1
    error_message = "With the events topic the bucket must notify the topic only (S3 forbids overlapping queue and topic filters)."
  }

  assert {
    condition = alltrue([for t in output.input_notification.topics :
      t.topic_arn == output.input_events_topic_arn && t.filter_prefix == "landing/" && t.filter_suffix == ".json"
    ])
    error_message = "The topic notification must carry the configured prefix and suffix."
  }

  assert {
    condition     = output.input_queue_redrive_policy.maxReceiveCount == 3
    error_message = "maxReceiveCount must follow queue_max_receive_count."
  }

  assert {
    condition     = contains(flatten([for s in output.function_policy_statements : s.Resource]), "arn:aws:s3:::weir-main-input-123456789012-eu-west-1/landing/*")
    error_message = "The role may read input objects under the notification prefix only."
  }
}

run "customer_managed_key_is_granted_only_on_that_key" {
  command = apply

  variables {
    sns_kms_key_arn = "arn:aws:kms:eu-west-1:123456789012:key/0b8b5d1e-1111-2222-3333-444455556666"
  }

  assert {
    condition = [for s in output.function_policy_statements : s.Resource if anytrue([for a in s.Action : startswith(a, "kms:")])] == [
      ["arn:aws:kms:eu-west-1:123456789012:key/0b8b5d1e-1111-2222-3333-444455556666"]
    ]
    error_message = "KMS permissions must name the customer-managed key and nothing else."
  }
}

run "existing_output_bucket_is_reused" {
  command = apply

  variables {
    create_output_bucket = false
    output_bucket_name   = "shared-datalake"
    output_prefix        = "weir/main"
  }

  assert {
    condition     = output.output_bucket == "shared-datalake" && output.function_environment.WEIR_OUTPUT_BUCKET == "shared-datalake"
    error_message = "The function must write to the reused bucket."
  }

  assert {
    condition     = contains(flatten([for s in output.function_policy_statements : s.Resource]), "arn:aws:s3:::shared-datalake/weir/main/*")
    error_message = "The role may write under the output prefix of the reused bucket only."
  }

  assert {
    condition     = output.output_location == "s3://shared-datalake/weir/main/"
    error_message = "The Glue table must cover the reused bucket's prefix."
  }
}

run "reuse_without_a_bucket_name_is_refused" {
  command = plan

  variables {
    create_output_bucket = false
  }

  expect_failures = [var.output_bucket_name]
}
