# Wiring of the whole module with two pipelines, planned and "applied" against a mocked
# AWS provider: no credentials, no network. Run with `terraform test` from terraform/.
#
# orders: examples/orders/plan.json (three tables, one topic, one objects sink), SQS and
#         S3 input (incoming/orders/*.csv straight to its queue).
# events: an inline plan (one table with a range key, one FIFO topic, no objects sink),
#         S3 input from the plan's source (incoming/events/*.json) through an SNS topic.

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

# Distinct, well-formed ARNs where the asserts compare them or match them against patterns.
override_resource {
  target = module.notifications.aws_sns_topic.alerts
  values = { arn = "arn:aws:sns:eu-west-1:123456789012:weir-alerts", id = "arn:aws:sns:eu-west-1:123456789012:weir-alerts" }
}

override_resource {
  target = module.function["orders"].aws_iam_role.this
  values = { arn = "arn:aws:iam::123456789012:role/weir-orders", id = "weir-orders", name = "weir-orders" }
}

override_resource {
  target = module.function["events"].aws_iam_role.this
  values = { arn = "arn:aws:iam::123456789012:role/weir-events", id = "weir-events", name = "weir-events" }
}

override_resource {
  target = module.function["orders"].aws_cloudwatch_log_group.this
  values = { arn = "arn:aws:logs:eu-west-1:123456789012:log-group:/aws/lambda/weir-orders" }
}

override_resource {
  target = module.function["events"].aws_cloudwatch_log_group.this
  values = { arn = "arn:aws:logs:eu-west-1:123456789012:log-group:/aws/lambda/weir-events" }
}

override_resource {
  target = module.ingest.aws_sqs_queue.input["orders"]
  values = { arn = "arn:aws:sqs:eu-west-1:123456789012:weir-orders-input", id = "https://sqs.eu-west-1.amazonaws.com/123456789012/weir-orders-input" }
}

override_resource {
  target = module.ingest.aws_sqs_queue.input["events"]
  values = { arn = "arn:aws:sqs:eu-west-1:123456789012:weir-events-input", id = "https://sqs.eu-west-1.amazonaws.com/123456789012/weir-events-input" }
}

override_resource {
  target = module.ingest.aws_sqs_queue.rejects["orders"]
  values = { arn = "arn:aws:sqs:eu-west-1:123456789012:weir-orders-orders-rejects", id = "https://sqs.eu-west-1.amazonaws.com/123456789012/weir-orders-orders-rejects" }
}

override_resource {
  target = module.ingest.aws_sqs_queue.rejects["events"]
  values = { arn = "arn:aws:sqs:eu-west-1:123456789012:weir-events-events-rejects", id = "https://sqs.eu-west-1.amazonaws.com/123456789012/weir-events-events-rejects" }
}

override_resource {
  target = module.ingest.aws_sns_topic.input_events["events"]
  values = { arn = "arn:aws:sns:eu-west-1:123456789012:weir-events-input-events", id = "arn:aws:sns:eu-west-1:123456789012:weir-events-input-events" }
}

override_resource {
  target = module.tables.aws_dynamodb_table.this["weir-orders-orders"]
  values = { arn = "arn:aws:dynamodb:eu-west-1:123456789012:table/weir-orders-orders" }
}

override_resource {
  target = module.tables.aws_dynamodb_table.this["weir-events-events"]
  values = { arn = "arn:aws:dynamodb:eu-west-1:123456789012:table/weir-events-events" }
}

override_resource {
  target = module.notifications.aws_sns_topic.this["weir-orders-big-orders"]
  values = { arn = "arn:aws:sns:eu-west-1:123456789012:weir-orders-big-orders", id = "arn:aws:sns:eu-west-1:123456789012:weir-orders-big-orders" }
}

override_resource {
  target = module.notifications.aws_sns_topic.this["weir-events-file-events.fifo"]
  values = { arn = "arn:aws:sns:eu-west-1:123456789012:weir-events-file-events.fifo", id = "arn:aws:sns:eu-west-1:123456789012:weir-events-file-events.fifo" }
}

variables {
  lambda_zip_path = "tests/fixtures/missing-bootstrap.zip"

  pipelines = {
    orders = {
      plan     = jsondecode(file("../examples/orders/plan.json"))
      s3_input = { prefix = "incoming/orders/", suffixes = [".csv"] }
    }
    events = {
      plan = {
        weir_plan = 1
        pipeline  = "events"
        tables = {
          events = { mode = "put", hash_key = "pk", range_key = "sk" }
        }
        topics      = { "file-events.fifo" = { fifo = true } }
        objects     = {}
        dead_letter = { queue = "events-rejects" }
        source      = { prefix = "incoming/events/", suffixes = [".json"] }
      }
      queue_input             = false
      s3_input                = { via_sns = true }
      batch_size              = 100
      batching_window_seconds = 10
      queue_max_receive_count = 3
      timeout_seconds         = 30
    }
  }
}

run "two_pipelines_wiring" {
  command = apply

  # --- Each pipeline has its own queues, function, tables, topics ------------------
  assert {
    condition = (
      output.pipelines.orders.function_name == "weir-orders" && output.pipelines.events.function_name == "weir-events" &&
      output.pipelines.orders.input_queue_name == "weir-orders-input" && output.pipelines.events.input_queue_name == "weir-events-input" &&
      output.pipelines.orders.input_dlq_name == "weir-orders-input-dlq" && output.pipelines.events.input_dlq_name == "weir-events-input-dlq" &&
      output.pipelines.orders.rejects_queue_name == "weir-orders-orders-rejects" && output.pipelines.events.rejects_queue_name == "weir-events-events-rejects" &&
      output.pipelines.orders.log_group_name == "/aws/lambda/weir-orders" && output.pipelines.events.log_group_name == "/aws/lambda/weir-events" &&
      output.pipelines.orders.function_role_arn != output.pipelines.events.function_role_arn
    )
    error_message = "Each pipeline must get its own function, role, log group, input queue, input DLQ and rejects queue, named <name>-<pipeline>-<thing>."
  }

  assert {
    condition = (
      { for l, t in output.pipelines.orders.tables : l => t.name } == { orders = "weir-orders-orders", user_stats = "weir-orders-user_stats", currency_stats = "weir-orders-currency_stats" } &&
      { for l, t in output.pipelines.events.tables : l => t.name } == { events = "weir-events-events" }
    )
    error_message = "Each plan table must become its own DynamoDB table <name>-<pipeline>-<table>."
  }

  assert {
    condition = (
      { for l, t in output.pipelines.orders.topics : l => t.name } == { big-orders = "weir-orders-big-orders" } &&
      { for l, t in output.pipelines.events.topics : l => t.name } == { "file-events.fifo" = "weir-events-file-events.fifo" }
    )
    error_message = "Each plan topic must become its own SNS topic; a FIFO topic's name ends in .fifo."
  }

  assert {
    condition     = module.notifications.topic_arns["weir-events-file-events.fifo"] == output.pipelines.events.topics["file-events.fifo"].arn
    error_message = "The FIFO topic must be the events pipeline's."
  }

  assert {
    condition     = output.pipelines.orders.output_prefixes == { orders-processed = "orders/orders/" } && output.pipelines.events.output_prefixes == {}
    error_message = "Each objects sink writes under <pipeline>/<plan prefix> of the shared output bucket."
  }

  # --- Event sources: partial batch failures, per-pipeline batch settings ----------
  assert {
    condition = alltrue([for k, p in output.pipelines :
      p.event_source_mapping.function_response_types == toset(["ReportBatchItemFailures"]) && p.event_source_mapping.event_source_arn == p.input_queue_arn
    ])
    error_message = "Each function's event source must be its own input queue, reporting batch item failures."
  }

  assert {
    condition = (
      output.pipelines.orders.event_source_mapping.batch_size == 10 && output.pipelines.orders.event_source_mapping.maximum_batching_window_in_seconds == 5 &&
      output.pipelines.events.event_source_mapping.batch_size == 100 && output.pipelines.events.event_source_mapping.maximum_batching_window_in_seconds == 10
    )
    error_message = "Batch size and window come from each pipeline's settings (defaults 10 and 5)."
  }

  # --- Redrive and visibility timeout ----------------------------------------------
  assert {
    condition = alltrue([for k, p in output.pipelines : p.input_queue_redrive_policy.deadLetterTargetArn == p.input_dlq_arn]) && (
      output.pipelines.orders.input_queue_redrive_policy.maxReceiveCount == 5 && output.pipelines.events.input_queue_redrive_policy.maxReceiveCount == 3
    )
    error_message = "Each input queue must redrive to its own DLQ after queue_max_receive_count receives (default 5)."
  }

  assert {
    condition     = output.pipelines.orders.input_queue_visibility_timeout_seconds == 360 && output.pipelines.events.input_queue_visibility_timeout_seconds == 180
    error_message = "The default visibility timeout is 6 x the pipeline's function timeout."
  }

  # --- Alarms: six per pipeline, all to the shared alerts topic --------------------
  assert {
    condition     = alltrue([for k, p in output.pipelines : length(p.alarms) == 6])
    error_message = "Each pipeline needs six alarms: dlq-depth, rejects-depth, function-errors, function-throttles, oldest-message-age, plugin-refusals."
  }

  assert {
    condition = alltrue(flatten([for k, p in output.pipelines : [for a in p.alarms :
      a.alarm_actions == toset([output.alerts_topic_arn]) && a.ok_actions == toset([output.alerts_topic_arn])
    ]]))
    error_message = "Every alarm must notify the alerts topic, and only it."
  }

  assert {
    condition = alltrue([for k, p in output.pipelines :
      p.alarms["plugin-refusals"].namespace == "Weir" && p.alarms["plugin-refusals"].metric_name == "PluginRefusals" &&
      p.alarms["plugin-refusals"].dimensions == tomap({ Pipeline = k }) &&
      p.alarms["dlq-depth"].dimensions.QueueName == p.input_dlq_name &&
      p.alarms["rejects-depth"].dimensions.QueueName == p.rejects_queue_name &&
      p.alarms["oldest-message-age"].metric_name == "ApproximateAgeOfOldestMessage" && p.alarms["oldest-message-age"].dimensions.QueueName == p.input_queue_name &&
      p.alarms["function-errors"].metric_name == "Errors" && p.alarms["function-errors"].dimensions.FunctionName == p.function_name &&
      p.alarms["function-throttles"].metric_name == "Throttles" && p.alarms["function-throttles"].dimensions.FunctionName == p.function_name &&
      p.alarms["function-errors"].alarm_name == "weir-${k}-function-errors"
    ])
    error_message = "Each pipeline's alarms must watch its own queues, its own function and Weir/PluginRefusals with Pipeline = its name."
  }

  # --- One notification on the shared input bucket, a rule per pipeline ------------
  assert {
    condition = length(output.input_notification.queues) == 1 && length(output.input_notification.topics) == 1 && alltrue([for q in output.input_notification.queues :
      q.queue_arn == output.pipelines.orders.input_queue_arn && q.filter_prefix == "incoming/orders/" && q.filter_suffix == ".csv" && q.events == toset(["s3:ObjectCreated:*"])
    ])
    error_message = "orders' rule must send object-created events under incoming/orders/ ending .csv straight to its queue."
  }

  assert {
    condition = alltrue([for t in output.input_notification.topics :
      t.topic_arn == output.pipelines.events.input_events_topic_arn && t.filter_prefix == "incoming/events/" && t.filter_suffix == ".json" && t.events == toset(["s3:ObjectCreated:*"])
    ]) && output.pipelines.orders.input_events_topic_arn == null
    error_message = "events' rule (prefix and suffix from its plan's source) must go to its input-events topic; orders has none."
  }

  # --- IAM: exact actions, exact resources, own resources only ---------------------
  assert {
    condition     = alltrue(flatten([for k, p in output.pipelines : [for s in p.function_policy_statements : [for a in s.Action : !strcontains(a, "*")]]]))
    error_message = "No IAM action may contain '*'."
  }

  assert {
    condition = alltrue(flatten([for k, p in output.pipelines : [for s in p.function_policy_statements : [for r in s.Resource :
      # No '*' at all, except a single trailing key wildcard under an exact S3 bucket
      # (and key prefix) or an exact log group's streams: object keys cannot be enumerated.
      !strcontains(r, "*") || (
        length(regexall("\\*", r)) == 1 && (
          can(regex("^arn:aws:s3:::[a-z0-9][a-z0-9.-]+/[^*]*\\*$", r)) ||
          can(regex("^arn:aws:logs:[a-z0-9-]+:[0-9]{12}:log-group:[^*:]+:log-stream:\\*$", r))
        )
      )
    ]]]))
    error_message = "IAM resources must be exact ARNs (a trailing key wildcard under an exact bucket and prefix, or an exact log group, is the only exception)."
  }

  assert {
    condition     = alltrue(flatten([for k, p in output.pipelines : [for s in p.function_policy_statements : s.Effect == "Allow" && length(s.Resource) > 0 && !contains(s.Resource, "*")]]))
    error_message = "Every statement must name its resources."
  }

  assert {
    condition     = !anytrue(flatten([for k, p in output.pipelines : [for s in p.function_policy_statements : [for a in s.Action : startswith(a, "kms:")]]]))
    error_message = "Without a customer-managed key the roles must not have KMS permissions."
  }

  assert {
    # Every ARN of the other pipeline's tables, topics and queues, in no statement of this one's.
    condition = alltrue([for k, p in output.pipelines : alltrue([for other, o in output.pipelines : k == other ? true :
      length(setintersection(
        toset(flatten([for s in p.function_policy_statements : s.Resource])),
        toset(concat([for t in o.tables : t.arn], [for t in o.topics : t.arn], [o.input_queue_arn, o.input_dlq_arn, o.rejects_queue_arn]))
      )) == 0
    ])])
    error_message = "A pipeline's role must not name another pipeline's table, topic or queue ARNs."
  }

  assert {
    condition = alltrue([for k, p in output.pipelines : alltrue([for s in p.function_policy_statements : alltrue([for r in s.Resource :
      !strcontains(r, ":s3:::") || r == "arn:aws:s3:::weir-plugins-123456789012-eu-west-1" || r == "arn:aws:s3:::weir-plugins-123456789012-eu-west-1/artifacts/*" ||
      strcontains(r, "/${k}/") || startswith(r, "arn:aws:s3:::weir-plugins-123456789012-eu-west-1/pipelines/${k}/") ||
      r == "arn:aws:s3:::weir-input-123456789012-eu-west-1/incoming/${k}/*"
    ])])])
    error_message = "A pipeline's S3 grants must stay under its own prefixes (and the shared artifacts)."
  }

  assert {
    condition = (
      tolist([for s in output.pipelines.orders.function_policy_statements : s.Resource if s.Sid == "WriteTables"][0]) == sort([for t in output.pipelines.orders.tables : t.arn]) &&
      tolist([for s in output.pipelines.events.function_policy_statements : s.Resource if s.Sid == "WriteTables"][0]) == tolist([output.pipelines.events.tables.events.arn]) &&
      tolist([for s in output.pipelines.orders.function_policy_statements : s.Resource if s.Sid == "PublishNotifications"][0]) == tolist([output.pipelines.orders.topics.big-orders.arn]) &&
      tolist([for s in output.pipelines.events.function_policy_statements : s.Resource if s.Sid == "PublishNotifications"][0]) == tolist([output.pipelines.events.topics["file-events.fifo"].arn]) &&
      tolist([for s in output.pipelines.orders.function_policy_statements : s.Action if s.Sid == "WriteTables"][0]) == tolist(["dynamodb:BatchWriteItem", "dynamodb:DescribeTable", "dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem"])
    )
    error_message = "Each role writes exactly its own tables (with DescribeTable) and publishes to exactly its own topics."
  }

  assert {
    condition = (
      [for s in output.pipelines.orders.function_policy_statements : s.Resource if s.Sid == "WriteOutputObjects"][0] == [
        "arn:aws:s3:::weir-output-123456789012-eu-west-1/orders/orders/*",
        "arn:aws:s3:::weir-output-123456789012-eu-west-1/weir-dead-letters/orders/*",
      ] &&
      [for s in output.pipelines.events.function_policy_statements : s.Resource if s.Sid == "WriteOutputObjects"][0] == [
        "arn:aws:s3:::weir-output-123456789012-eu-west-1/weir-dead-letters/events/*",
      ] &&
      [for s in output.pipelines.events.function_policy_statements : s.Resource if s.Sid == "Checkpoints"][0] == [
        "arn:aws:s3:::weir-output-123456789012-eu-west-1/weir-checkpoints/events/*",
      ] &&
      [for s in output.pipelines.events.function_policy_statements : s.Resource if s.Sid == "ReadInputObjects"][0] == [
        "arn:aws:s3:::weir-input-123456789012-eu-west-1/incoming/events/*",
      ] &&
      [for s in output.pipelines.orders.function_policy_statements : s.Resource if s.Sid == "ReadManifestAndPlugins"][0] == [
        "arn:aws:s3:::weir-plugins-123456789012-eu-west-1/pipelines/orders/*",
        "arn:aws:s3:::weir-plugins-123456789012-eu-west-1/artifacts/*",
      ]
    )
    error_message = "S3 grants: objects sinks, dead letters and checkpoints under the pipeline's own prefixes; input under its own prefix; its own manifest and bindings."
  }

  # --- The environment: exactly lambda/env-vars.json, pointing at the bindings -----
  assert {
    condition = alltrue([for k, p in output.pipelines :
      toset(keys(p.function_environment)) == toset([for v in jsondecode(file("../lambda/env-vars.json")).variables : v.name])
    ])
    error_message = "Each function's environment names must equal the names in lambda/env-vars.json."
  }

  assert {
    condition = alltrue([for k, p in output.pipelines :
      p.function_environment.WEIR_PIPELINE == k &&
      p.function_environment.WEIR_PLUGINS_BUCKET == output.plugins_bucket &&
      p.function_environment.WEIR_MANIFEST_KEY == "pipelines/${k}/manifest.json" &&
      p.function_environment.WEIR_BINDINGS_KEY == "pipelines/${k}/bindings.json" &&
      p.function_environment.WEIR_REFRESH_SECONDS == "30" &&
      p.function_environment.WEIR_SIGNING_KEYS == "" &&
      p.function_environment.WEIR_CACHE_DIR == "/tmp/weir-cache" &&
      p.function_environment.RUST_LOG == "info"
    ])
    error_message = "Each function's environment must name its pipeline, its manifest and its bindings document."
  }

  # --- The bindings documents: exactly each plan's sinks ---------------------------
  assert {
    condition = alltrue([for k, p in output.pipelines :
      toset(keys(p.bindings)) == toset(["weir_bindings", "pipeline", "tables", "topics", "objects", "dead_letter", "checkpoints", "input"]) &&
      p.bindings.weir_bindings == 1 && p.bindings.pipeline == k &&
      sort(keys(p.bindings.tables)) == sort(keys(var.pipelines[k].plan.tables)) &&
      sort(keys(p.bindings.topics)) == sort(keys(var.pipelines[k].plan.topics)) &&
      sort(keys(p.bindings.objects)) == sort(keys(var.pipelines[k].plan.objects))
    ])
    error_message = "Each bindings document must have the schema's keys and name exactly its plan's tables, topics and objects sinks."
  }

  assert {
    condition = output.pipelines.orders.bindings.tables == {
      orders         = { name = "weir-orders-orders", arn = "arn:aws:dynamodb:eu-west-1:123456789012:table/weir-orders-orders", hash_key = "pk", range_key = null }
      user_stats     = { name = "weir-orders-user_stats", arn = output.pipelines.orders.tables.user_stats.arn, hash_key = "user_id", range_key = null }
      currency_stats = { name = "weir-orders-currency_stats", arn = output.pipelines.orders.tables.currency_stats.arn, hash_key = "currency", range_key = null }
    }
    error_message = "orders' bindings must map each plan table to its table's name, ARN and key schema (range_key null)."
  }

  assert {
    condition = (
      output.pipelines.events.bindings.tables.events == { name = "weir-events-events", arn = "arn:aws:dynamodb:eu-west-1:123456789012:table/weir-events-events", hash_key = "pk", range_key = "sk" } &&
      output.pipelines.orders.bindings.topics == { big-orders = { arn = "arn:aws:sns:eu-west-1:123456789012:weir-orders-big-orders" } } &&
      output.pipelines.events.bindings.topics == { "file-events.fifo" = { arn = "arn:aws:sns:eu-west-1:123456789012:weir-events-file-events.fifo" } } &&
      output.pipelines.orders.bindings.objects == { orders-processed = { bucket = "weir-output-123456789012-eu-west-1", prefix = "orders/orders/" } } &&
      output.pipelines.events.bindings.objects == {}
    )
    error_message = "The bindings must map topics to their ARNs and objects sinks to the output bucket and <pipeline>/<prefix>."
  }

  assert {
    condition = alltrue([for k, p in output.pipelines :
      p.bindings.dead_letter == {
        queue_url      = p.rejects_queue_url
        queue_arn      = p.rejects_queue_arn
        offload_bucket = output.output_bucket
        offload_prefix = "weir-dead-letters/${k}/"
      } &&
      p.bindings.checkpoints == { bucket = output.output_bucket, prefix = "weir-checkpoints/${k}/" } &&
      p.bindings.input == { queue_url = p.input_queue_url, queue_arn = p.input_queue_arn }
    ])
    error_message = "The bindings' dead_letter must be the pipeline's rejects queue and offload prefix; checkpoints its own prefix; input its own input queue."
  }

  assert {
    condition = alltrue([for k, p in output.pipelines :
      [for s in p.function_policy_statements : s if s.Sid == "ContinueLongObjects"] == [{
        Sid = "ContinueLongObjects", Effect = "Allow", Action = ["sqs:SendMessage"], Resource = [p.input_queue_arn]
      }]
    ])
    error_message = "A function may send to its own input queue (continuations of objects cut off by the deadline), and only that."
  }

  # --- Shared resources -------------------------------------------------------------
  assert {
    condition = (
      output.plugins_bucket == "weir-plugins-123456789012-eu-west-1" &&
      output.input_bucket == "weir-input-123456789012-eu-west-1" &&
      output.output_bucket == "weir-output-123456789012-eu-west-1" &&
      output.dashboard_name == "weir"
    )
    error_message = "Shared buckets default to <name>-<role>-<account>-<region>; the dashboard is <name>."
  }

  assert {
    condition = output.athena_workgroup == "weir" && output.glue_database == "weir" && output.glue_tables == {
      orders_orders_processed = { pipeline = "orders", sink = "orders-processed", location = "s3://weir-output-123456789012-eu-west-1/orders/orders/" }
    }
    error_message = "Glue must have one table per dt={date}/ JSON lines objects sink, over its prefix."
  }
}

run "explicit_visibility_timeout_is_used" {
  command = plan

  variables {
    pipelines = {
      orders = {
        plan                             = jsondecode(file("../examples/orders/plan.json"))
        timeout_seconds                  = 30
        queue_visibility_timeout_seconds = 900
      }
    }
  }

  assert {
    condition     = output.pipelines.orders.input_queue_visibility_timeout_seconds == 900
    error_message = "An explicit visibility timeout of at least 6 x the timeout must be used as given."
  }

  assert {
    condition     = output.input_notification.queues == [] && output.input_notification.topics == []
    error_message = "Without S3 inputs the bucket has no notification rules."
  }
}

run "visibility_timeout_below_six_times_timeout_is_refused" {
  command = plan

  variables {
    pipelines = {
      orders = {
        plan                             = jsondecode(file("../examples/orders/plan.json"))
        timeout_seconds                  = 60
        queue_visibility_timeout_seconds = 300
      }
    }
  }

  expect_failures = [var.pipelines]
}

run "batch_above_ten_needs_a_window" {
  command = plan

  variables {
    pipelines = {
      orders = {
        plan                    = jsondecode(file("../examples/orders/plan.json"))
        batch_size              = 100
        batching_window_seconds = 0
      }
    }
  }

  expect_failures = [var.pipelines]
}

run "overlapping_s3_inputs_are_refused" {
  command = plan

  variables {
    pipelines = {
      orders = {
        plan     = jsondecode(file("../examples/orders/plan.json"))
        s3_input = { prefix = "incoming/", suffixes = [".csv"] }
      }
      returns = {
        plan     = merge(jsondecode(file("../examples/orders/plan.json")), { pipeline = "returns" })
        s3_input = { prefix = "incoming/returns/", suffixes = [".csv", ".json"] }
      }
    }
  }

  expect_failures = [var.pipelines]
}

run "disjoint_s3_inputs_share_one_notification" {
  command = plan

  variables {
    pipelines = {
      orders = {
        plan     = jsondecode(file("../examples/orders/plan.json"))
        s3_input = { prefix = "incoming/", suffixes = [".csv"] }
      }
      returns = {
        plan     = merge(jsondecode(file("../examples/orders/plan.json")), { pipeline = "returns" })
        s3_input = { prefix = "incoming/returns/", suffixes = [".json", ".jsonl"] }
      }
    }
  }

  assert {
    condition = (
      length(output.input_notification.queues) == 3 &&
      toset([for q in output.input_notification.queues : "${q.filter_prefix}|${q.filter_suffix}"]) == toset(["incoming/|.csv", "incoming/returns/|.json", "incoming/returns/|.jsonl"])
    )
    error_message = "One rule per pipeline and suffix, all in the input bucket's one notification."
  }
}

run "a_plan_of_another_pipeline_is_refused" {
  command = plan

  variables {
    pipelines = {
      returns = { plan = jsondecode(file("../examples/orders/plan.json")) }
    }
  }

  expect_failures = [var.pipelines]
}

run "colliding_names_are_refused" {
  command = plan

  variables {
    pipelines = {
      # weir-a-b-input (pipeline a-b) is also pipeline a's rejects queue b-input.
      a = {
        plan = {
          weir_plan   = 1
          pipeline    = "a"
          tables      = {}
          topics      = {}
          objects     = {}
          dead_letter = { queue = "b-input" }
          source      = { prefix = "", suffixes = [] }
        }
      }
      a-b = {
        plan = {
          weir_plan   = 1
          pipeline    = "a-b"
          tables      = {}
          topics      = {}
          objects     = {}
          dead_letter = { queue = "rejects" }
          source      = { prefix = "", suffixes = [] }
        }
      }
    }
  }

  expect_failures = [var.pipelines]
}

run "customer_managed_key_is_granted_only_on_that_key" {
  command = apply

  variables {
    sns_kms_key_arn = "arn:aws:kms:eu-west-1:123456789012:key/0b8b5d1e-1111-2222-3333-444455556666"
  }

  assert {
    condition = alltrue([for k, p in output.pipelines :
      [for s in p.function_policy_statements : s.Resource if anytrue([for a in s.Action : startswith(a, "kms:")])] == [
        ["arn:aws:kms:eu-west-1:123456789012:key/0b8b5d1e-1111-2222-3333-444455556666"]
      ]
    ])
    error_message = "KMS permissions must name the customer-managed key and nothing else."
  }
}

run "existing_output_bucket_is_reused" {
  command = apply

  variables {
    create_output_bucket = false
    output_bucket_name   = "shared-datalake"
  }

  assert {
    condition     = output.output_bucket == "shared-datalake" && output.pipelines.orders.bindings.objects.orders-processed.bucket == "shared-datalake" && output.pipelines.events.bindings.dead_letter.offload_bucket == "shared-datalake"
    error_message = "The functions must write to the reused bucket."
  }

  assert {
    condition     = contains(flatten([for s in output.pipelines.orders.function_policy_statements : s.Resource]), "arn:aws:s3:::shared-datalake/orders/orders/*")
    error_message = "The role may write under its pipeline's prefixes of the reused bucket only."
  }

  assert {
    condition     = output.glue_tables.orders_orders_processed.location == "s3://shared-datalake/orders/orders/"
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
