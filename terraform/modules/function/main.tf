# The weir function: one role with exact grants, its log group, the function itself
# (provided.al2023, the cargo-lambda `bootstrap` zip) and the SQS event source that
# reports partial batch failures.

locals {
  # lambda/env-vars.json is the contract between this module and the Lambda binary.
  env_contract       = jsondecode(file("${path.module}/../../../lambda/env-vars.json"))
  env_contract_names = sort([for v in local.env_contract.variables : v.name])

  environment = {
    WEIR_PIPELINE          = var.pipeline
    WEIR_PLUGINS_BUCKET    = var.plugins_bucket_name
    WEIR_MANIFEST_KEY      = var.manifest_key
    WEIR_RESULTS_TABLE     = var.results_table_name
    WEIR_AGGREGATES_TABLE  = var.aggregates_table_name
    WEIR_NOTIFY_TOPIC_ARN  = var.notify_topic_arn
    WEIR_REJECTS_QUEUE_URL = var.rejects_queue_url
    WEIR_OUTPUT_BUCKET     = var.output_bucket_name
    WEIR_OUTPUT_PREFIX     = var.output_prefix
    WEIR_REFRESH_SECONDS   = tostring(var.refresh_seconds)
    WEIR_SIGNING_KEYS      = join(",", var.signing_keys)
    WEIR_CACHE_DIR         = var.cache_dir
    RUST_LOG               = var.rust_log
  }

  log_group_name = "/aws/lambda/${var.name}"

  # Every Allow names exact actions and exact resource ARNs. The only `*` characters are
  # the trailing key wildcards of S3 object ARNs under one exact bucket (and prefix) and
  # of log streams under one exact log group: those resources cannot be enumerated.
  # CloudWatch metrics (Weir/PluginRefusals) are emitted in Embedded Metric Format on
  # the log stream, so no cloudwatch:PutMetricData (which only accepts Resource "*").
  policy_statements = concat(
    [
      {
        Sid      = "ConsumeInputQueue"
        Effect   = "Allow"
        Action   = ["sqs:ChangeMessageVisibility", "sqs:DeleteMessage", "sqs:GetQueueAttributes", "sqs:ReceiveMessage"]
        Resource = [var.input_queue_arn]
      },
      {
        Sid      = "SendRejectedRecords"
        Effect   = "Allow"
        Action   = ["sqs:SendMessage"]
        Resource = [var.rejects_queue_arn]
      },
      {
        Sid      = "ListPluginsBucket"
        Effect   = "Allow"
        Action   = ["s3:ListBucket"]
        Resource = [var.plugins_bucket_arn]
      },
      {
        Sid      = "ReadManifestAndPlugins"
        Effect   = "Allow"
        Action   = ["s3:GetObject", "s3:GetObjectVersion"]
        Resource = ["${var.plugins_bucket_arn}/*"]
      },
      {
        Sid      = "ReadInputObjects"
        Effect   = "Allow"
        Action   = ["s3:GetObject"]
        Resource = ["${var.input_bucket_arn}/${var.input_prefix}*"]
      },
      {
        Sid    = "WriteOutputObjects"
        Effect = "Allow"
        Action = ["s3:PutObject"]
        # Processed records under the Glue table's location; dead letters too large for SQS
        # (over 256 KB) under weir-dead-letters/, outside it (the queue message points there).
        Resource = ["${var.output_bucket_arn}/${var.output_prefix}/*", "${var.output_bucket_arn}/weir-dead-letters/*"]
      },
      {
        # Progress through objects cut off by the invocation deadline (resumed on retry).
        Sid      = "Checkpoints"
        Effect   = "Allow"
        Action   = ["s3:GetObject", "s3:PutObject", "s3:DeleteObject"]
        Resource = ["${var.output_bucket_arn}/weir-checkpoints/*"]
      },
      {
        Sid      = "WriteTables"
        Effect   = "Allow"
        Action   = ["dynamodb:BatchWriteItem", "dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem"]
        Resource = [var.results_table_arn, var.aggregates_table_arn]
      },
      {
        Sid      = "PublishNotifications"
        Effect   = "Allow"
        Action   = ["sns:Publish"]
        Resource = [var.notify_topic_arn]
      },
      {
        Sid      = "WriteLogs"
        Effect   = "Allow"
        Action   = ["logs:CreateLogStream", "logs:PutLogEvents"]
        Resource = ["${aws_cloudwatch_log_group.this.arn}:log-stream:*"]
      },
    ],
    var.sns_kms_key_arn == null ? [] : [
      {
        Sid      = "EncryptNotifications"
        Effect   = "Allow"
        Action   = ["kms:Decrypt", "kms:GenerateDataKey"]
        Resource = [var.sns_kms_key_arn]
      },
    ],
  )
}

resource "aws_iam_role" "this" {
  name = var.name
  assume_role_policy = jsonencode({
    Version = "2012-10-17"
    Statement = [{
      Effect    = "Allow"
      Principal = { Service = "lambda.amazonaws.com" }
      Action    = "sts:AssumeRole"
    }]
  })
  tags = var.tags
}

resource "aws_iam_role_policy" "this" {
  name   = "${var.name}-pipeline"
  role   = aws_iam_role.this.id
  policy = jsonencode({ Version = "2012-10-17", Statement = local.policy_statements })
}

resource "aws_cloudwatch_log_group" "this" {
  name              = local.log_group_name
  retention_in_days = var.log_retention_days
  tags              = var.tags
}

resource "aws_lambda_function" "this" {
  function_name = var.name
  role          = aws_iam_role.this.arn
  runtime       = "provided.al2023"
  handler       = "bootstrap"
  architectures = [var.architecture]
  filename      = var.zip_path
  # Known at plan time when the zip exists; otherwise the provider reports the missing file.
  source_code_hash               = fileexists(var.zip_path) ? filebase64sha256(var.zip_path) : null
  memory_size                    = var.memory_mb
  timeout                        = var.timeout_seconds
  reserved_concurrent_executions = var.reserved_concurrency

  environment {
    variables = local.environment
  }

  lifecycle {
    precondition {
      condition     = sort(keys(local.environment)) == local.env_contract_names
      error_message = "The function environment must set exactly the names listed in lambda/env-vars.json."
    }
  }

  tags = var.tags

  depends_on = [aws_cloudwatch_log_group.this, aws_iam_role_policy.this]
}

resource "aws_lambda_event_source_mapping" "input" {
  event_source_arn                   = var.input_queue_arn
  function_name                      = aws_lambda_function.this.arn
  batch_size                         = var.batch_size
  maximum_batching_window_in_seconds = var.batching_window_seconds
  function_response_types            = ["ReportBatchItemFailures"]
  enabled                            = true

  dynamic "scaling_config" {
    for_each = var.max_concurrency == null ? [] : [var.max_concurrency]
    content {
      maximum_concurrency = scaling_config.value
    }
  }

  depends_on = [aws_iam_role_policy.this]
}
