data "aws_caller_identity" "current" {}

data "aws_region" "current" {}

locals {
  prefix     = "${var.name}-${var.pipeline}"
  account_id = data.aws_caller_identity.current.account_id
  region     = data.aws_region.current.name

  bucket_names = {
    plugins = coalesce(var.plugins_bucket_name, "${local.prefix}-plugins-${local.account_id}-${local.region}")
    input   = coalesce(var.input_bucket_name, "${local.prefix}-input-${local.account_id}-${local.region}")
    output  = coalesce(var.output_bucket_name, "${local.prefix}-output-${local.account_id}-${local.region}")
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

  visibility_timeout_seconds = coalesce(var.queue_visibility_timeout_seconds, 6 * var.lambda_timeout_seconds)
  manifest_key               = coalesce(var.manifest_key, "pipelines/${var.pipeline}/manifest.json")
  lambda_zip_path            = coalesce(var.lambda_zip_path, "${path.module}/../target/lambda/bootstrap/bootstrap.zip")
  notify_filter_policy       = coalesce(var.notify_example_filter_policy, { pipeline = [var.pipeline] })
}

data "aws_partition" "current" {}
