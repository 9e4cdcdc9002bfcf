# One pipeline's function: its bindings document, one role with exact grants on that
# pipeline's resources only, its log group, the function itself (provided.al2023, the
# cargo-lambda `bootstrap` zip) and the SQS event source that reports partial batch failures.

locals {
  # lambda/env-vars.json is the contract between this module and the Lambda binary.
  env_contract       = jsondecode(file("${path.module}/../../../lambda/env-vars.json"))
  env_contract_names = sort([for v in local.env_contract.variables : v.name])

  # The bindings document: every sink the pipeline's plan names -> the resource deployed
  # for it. The function reads it at cold start (WEIR_BINDINGS_KEY); its schema is the
  # contract in docs/deploy.md ("The bindings document").
  bindings = {
    weir_bindings = 1
    pipeline      = var.pipeline
    tables = { for l, t in var.tables : l => {
      name      = t.name
      arn       = t.arn
      hash_key  = t.hash_key
      range_key = t.range_key
    } }
    topics  = { for l, t in var.topics : l => { arn = t.arn } }
    objects = { for l, o in var.objects : l => { bucket = var.output_bucket_name, prefix = o.prefix } }
    dead_letter = {
      queue_url      = var.rejects_queue_url
      queue_arn      = var.rejects_queue_arn
      offload_bucket = var.output_bucket_name
      offload_prefix = var.dead_letters_prefix
    }
    checkpoints = {
      bucket = var.output_bucket_name
      prefix = var.checkpoints_prefix
    }
    input = {
      queue_url = var.input_queue_url
      queue_arn = var.input_queue_arn
    }
  }
  bindings_json = jsonencode(local.bindings)

  environment = {
    WEIR_PIPELINE        = var.pipeline
    WEIR_PLUGINS_BUCKET  = var.plugins_bucket_name
    WEIR_MANIFEST_KEY    = var.manifest_key
    WEIR_BINDINGS_KEY    = aws_s3_object.bindings.key
    WEIR_REFRESH_SECONDS = tostring(var.refresh_seconds)
    WEIR_SIGNING_KEYS    = join(",", var.signing_keys)
    WEIR_CACHE_DIR       = var.cache_dir
    RUST_LOG             = var.rust_log
  }

  log_group_name = "/aws/lambda/${var.name}"

  # Every Allow names exact actions and exact resource ARNs, all of this pipeline's own.
  # The only `*` characters are the trailing key wildcards of S3 object ARNs under one
  # exact bucket and prefix, and of log streams under one exact log group: those resources
  # cannot be enumerated. CloudWatch metrics (Weir/PluginRefusals) are emitted in Embedded
  # Metric Format on the log stream, so no cloudwatch:PutMetricData (which only accepts
  # Resource "*"). A statement whose resource list would be empty is left out.
  policy_statements = concat(
    [
      {
        Sid      = "ConsumeInputQueue"
        Effect   = "Allow"
        Action   = ["sqs:ChangeMessageVisibility", "sqs:DeleteMessage", "sqs:GetQueueAttributes", "sqs:ReceiveMessage"]
        Resource = [var.input_queue_arn]
      },
      {
        # An object cut off by the invocation deadline goes on in a new message on the same
        # queue (a continuation), so a large object does not spend its message's receives.
        Sid      = "ContinueLongObjects"
        Effect   = "Allow"
        Action   = ["sqs:SendMessage"]
        Resource = [var.input_queue_arn]
      },
      {
        Sid      = "SendRejectedRecords"
        Effect   = "Allow"
        Action   = ["sqs:SendMessage"]
        Resource = [var.rejects_queue_arn]
      },
      {
        # Without s3:ListBucket, S3 answers a GetObject of a missing key with 403 instead of
        # NoSuchKey, and the host could not tell "not published yet" from "denied". (A
        # s3:prefix condition would not apply to that check, so it is bucket-wide: it
        # shows key names, never content.)
        Sid      = "ListPluginsBucket"
        Effect   = "Allow"
        Action   = ["s3:ListBucket"]
        Resource = [var.plugins_bucket_arn]
      },
      {
        # This pipeline's manifest, history and bindings; plugins by content address.
        Sid      = "ReadManifestAndPlugins"
        Effect   = "Allow"
        Action   = ["s3:GetObject", "s3:GetObjectVersion"]
        Resource = ["${var.plugins_bucket_arn}/pipelines/${var.pipeline}/*", "${var.plugins_bucket_arn}/artifacts/*"]
      },
    ],
    var.input_prefix == null ? [] : [
      {
        Sid      = "ReadInputObjects"
        Effect   = "Allow"
        Action   = ["s3:GetObject"]
        Resource = ["${var.input_bucket_arn}/${var.input_prefix}*"]
      },
    ],
    [
      {
        Sid    = "WriteOutputObjects"
        Effect = "Allow"
        Action = ["s3:PutObject"]
        # Each objects sink's prefix; dead letters too large for SQS (over 256 KB) under
        # weir-dead-letters/<pipeline>/ (the queue message points there).
        Resource = concat([for o in var.objects : "${var.output_bucket_arn}/${o.prefix}*"], ["${var.output_bucket_arn}/${var.dead_letters_prefix}*"])
      },
      {
        # Progress through objects cut off by the invocation deadline (resumed on retry).
        Sid      = "Checkpoints"
        Effect   = "Allow"
        Action   = ["s3:GetObject", "s3:PutObject", "s3:DeleteObject"]
        Resource = ["${var.output_bucket_arn}/${var.checkpoints_prefix}*"]
      },
    ],
    length(var.tables) == 0 ? [] : [
      {
        # PutItem and UpdateItem also authorize the items of TransactWriteItems (there is
        # no separate action); DescribeTable lets the host check the key schemas.
        Sid      = "WriteTables"
        Effect   = "Allow"
        Action   = ["dynamodb:BatchWriteItem", "dynamodb:DescribeTable", "dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem"]
        Resource = sort([for t in var.tables : t.arn])
      },
    ],
    length(var.topics) == 0 ? [] : [
      {
        Sid      = "PublishNotifications"
        Effect   = "Allow"
        Action   = ["sns:Publish"]
        Resource = sort([for t in var.topics : t.arn])
      },
    ],
    [
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

# Written before the function exists (WEIR_BINDINGS_KEY refers to it), so the first
# invocation finds it.
resource "aws_s3_object" "bindings" {
  bucket       = var.plugins_bucket_name
  key          = var.bindings_key
  content      = local.bindings_json
  content_type = "application/json"
  tags         = var.tags
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
  # The bindings are read once per cold start: a changed document changes the description,
  # and a configuration change starts new execution environments.
  description   = "weir pipeline ${var.pipeline}; bindings sha256 ${substr(sha256(local.bindings_json), 0, 16)}"
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

  depends_on = [aws_cloudwatch_log_group.this, aws_iam_role_policy.this, aws_s3_object.bindings]
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
