# weir against a local AWS emulator (moto server) on the loopback interface: every
# resource is really created, read back, wired and destroyed, without an AWS account.
# The account ID is read from the emulator's STS (resource ARNs must carry it).
# Credentials come from the environment (AWS_ACCESS_KEY_ID=testing, ...): see
# terraform/tests/run.sh, which runs this end to end.
# moto denies every object request to a bucket with the TLS-only policy (it does not
# evaluate the condition), so after apply, refresh fails on the bindings documents:
# destroy with -refresh=false, as run.sh does.

provider "aws" {
  region                      = var.region
  skip_credentials_validation = true
  skip_metadata_api_check     = true
  skip_region_validation      = true
  s3_use_path_style           = true

  endpoints {
    athena     = var.endpoint
    cloudwatch = var.endpoint
    dynamodb   = var.endpoint
    glue       = var.endpoint
    iam        = var.endpoint
    lambda     = var.endpoint
    logs       = var.endpoint
    s3         = var.endpoint
    sns        = var.endpoint
    sqs        = var.endpoint
    sts        = var.endpoint
  }

  default_tags {
    tags = { project = "weir", env = "local" }
  }
}

module "weir" {
  source = "../.."

  name = "weir"

  pipelines = {
    # SQS records, and CSV and JSON Lines objects under incoming/orders/ (one notification
    # rule per suffix), straight to the queue.
    orders = {
      plan     = jsondecode(file("${path.module}/../../../examples/orders/plan.json"))
      s3_input = { prefix = "incoming/orders/", suffixes = [".csv", ".jsonl"] }

      # Every invocation checks the manifest: tests/deployed_flow.py hot-swaps a stage and
      # rolls it back while one function process runs, without waiting 30 s each time.
      refresh_seconds         = 0
      signing_keys            = var.signing_keys
      queue_max_receive_count = 4
      timeout_seconds         = 30
      batch_size              = 25
      batching_window_seconds = 2
      max_concurrency         = 2
    }
    # JSON objects under incoming/events/ (the plan's source), through an SNS topic. The plan
    # is `weir plan events.weir.toml`, the file tests/deployed_flow.py publishes and runs.
    events = {
      plan        = jsondecode(file("${path.module}/events.plan.json"))
      queue_input = false
      s3_input    = { via_sns = true }

      signing_keys         = var.signing_keys
      reserved_concurrency = 5
      max_concurrency      = 2
    }
  }

  lambda_zip_path         = var.lambda_zip_path
  enable_athena_workgroup = var.enable_athena_workgroup

  # Throwaway: everything must go on destroy.
  force_destroy_buckets     = true
  table_deletion_protection = false

  alerts_email = "alerts@example.com"
}

# What a user of the module adds next to it: a subscriber to one pipeline's notifications. A
# queue of the big orders in EUR, filtered by SNS on the `currency` message attribute that the
# notify sink sets (examples/orders/weir.toml: attributes = ["currency", "channel"]), raw
# delivery (the record itself, its attributes as SQS message attributes).
# tests/deployed_flow.py checks it receives exactly those orders.
locals {
  big_orders_topic_arn = module.weir.pipelines["orders"].topics["big-orders"].arn
}

resource "aws_sqs_queue" "big_orders_eur" {
  name                    = "weir-local-big-orders-eur"
  sqs_managed_sse_enabled = true
}

# Only the big-orders topic may send to it.
resource "aws_sqs_queue_policy" "big_orders_eur" {
  queue_url = aws_sqs_queue.big_orders_eur.id
  policy = jsonencode({
    Version = "2012-10-17"
    Statement = [{
      Sid       = "AllowBigOrdersTopic"
      Effect    = "Allow"
      Principal = { Service = "sns.amazonaws.com" }
      Action    = "sqs:SendMessage"
      Resource  = aws_sqs_queue.big_orders_eur.arn
      Condition = {
        ArnEquals = { "aws:SourceArn" = local.big_orders_topic_arn }
      }
    }]
  })
}

resource "aws_sns_topic_subscription" "big_orders_eur" {
  topic_arn            = local.big_orders_topic_arn
  protocol             = "sqs"
  endpoint             = aws_sqs_queue.big_orders_eur.arn
  raw_message_delivery = true
  filter_policy        = jsonencode({ currency = ["EUR"] })

  depends_on = [aws_sqs_queue_policy.big_orders_eur]
}
