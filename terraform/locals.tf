data "aws_caller_identity" "current" {}

data "aws_region" "current" {}

data "aws_partition" "current" {}

locals {
  account_id = data.aws_caller_identity.current.account_id
  region     = data.aws_region.current.name

  # ---------------------------------------------------------------------------
  # Shared buckets
  # ---------------------------------------------------------------------------

  bucket_names = {
    plugins = coalesce(var.plugins_bucket_name, "${var.name}-plugins-${local.account_id}-${local.region}")
    input   = coalesce(var.input_bucket_name, "${var.name}-input-${local.account_id}-${local.region}")
    output  = coalesce(var.output_bucket_name, "${var.name}-output-${local.account_id}-${local.region}")
  }

  buckets = merge(
    {
      plugins = {
        name                               = local.bucket_names.plugins
        noncurrent_version_expiration_days = var.plugins_noncurrent_version_days
      }
      input = {
        name                               = local.bucket_names.input
        noncurrent_version_expiration_days = var.output_noncurrent_version_days
        current_version_expiration_days    = var.input_expiration_days
      }
    },
    var.create_output_bucket ? {
      output = {
        name                               = local.bucket_names.output
        noncurrent_version_expiration_days = var.output_noncurrent_version_days
      }
    } : {},
  )

  # A reused output bucket is named, not created: its ARN follows from its name.
  output_bucket_arn = var.create_output_bucket ? module.storage.arns["output"] : "arn:${data.aws_partition.current.partition}:s3:::${local.bucket_names.output}"

  lambda_zip_path = coalesce(var.lambda_zip_path, "${path.module}/../target/lambda/bootstrap/bootstrap.zip")

  # ---------------------------------------------------------------------------
  # Per pipeline: the physical name of every sink its plan names
  # ---------------------------------------------------------------------------

  pipelines = { for k, p in var.pipelines : k => {
    prefix                     = "${var.name}-${k}"
    visibility_timeout_seconds = p.queue_visibility_timeout_seconds != null ? p.queue_visibility_timeout_seconds : 6 * p.timeout_seconds
    rejects_queue_name         = "${var.name}-${k}-${p.plan.dead_letter.queue}"
    tables = { for l, t in p.plan.tables : l => {
      name      = "${var.name}-${k}-${l}"
      hash_key  = t.hash_key
      range_key = t.range_key
    } }
    topics = { for l, t in p.plan.topics : l => {
      name = t.fifo ? "${var.name}-${k}-${trimsuffix(l, ".fifo")}.fifo" : "${var.name}-${k}-${l}"
      fifo = t.fifo
    } }
    # Each pipeline writes under its own <pipeline>/ of the shared output bucket.
    objects = { for l, o in p.plan.objects : l => {
      prefix    = "${k}/${o.prefix}"
      partition = o.partition
      format    = o.format
    } }
    dead_letters_prefix = "weir-dead-letters/${k}/"
    checkpoints_prefix  = "weir-checkpoints/${k}/"
    manifest_key        = "pipelines/${k}/manifest.json"
    bindings_key        = "pipelines/${k}/bindings.json"
  } }

  # ---------------------------------------------------------------------------
  # S3 inputs: one bucket, one notification, a prefix/suffix filter per pipeline
  # ---------------------------------------------------------------------------

  s3_inputs = { for k, p in var.pipelines : k => {
    prefix   = p.s3_input.prefix != null ? p.s3_input.prefix : p.plan.source.prefix
    suffixes = p.s3_input.suffixes != null ? p.s3_input.suffixes : p.plan.source.suffixes
    via_sns  = p.s3_input.via_sns
  } if p.s3_input != null }

  # One notification rule per (pipeline, suffix); no suffixes = one rule without a suffix
  # filter. var.pipelines validates that no two overlap.
  s3_rules = flatten([for k, s in local.s3_inputs : [for i, suffix in(length(s.suffixes) == 0 ? [""] : s.suffixes) : {
    id       = "${var.name}-${k}-${i}"
    pipeline = k
    prefix   = s.prefix
    suffix   = suffix
    via_sns  = s.via_sns
  }]])

  # ---------------------------------------------------------------------------
  # Analytics: a Glue table per objects sink that writes dt={date}/ JSON lines
  # ---------------------------------------------------------------------------

  glue_tables = merge([for k, p in local.pipelines : { for l, o in p.objects : lower(replace("${k}_${l}", "-", "_")) => {
    pipeline = k
    sink     = l
    location = "s3://${local.bucket_names.output}/${o.prefix}"
  } if o.partition == "dt={date}/" && o.format == "jsonl" }]...)
}
