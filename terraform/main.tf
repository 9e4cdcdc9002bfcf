# weir: S3 object-created events and SQS batches flow through user WebAssembly plugins
# in one Lambda, into DynamoDB, SNS, S3 (queryable with Athena) and a rejects queue.
# Each concern is a module; this file only wires them together.

module "storage" {
  source = "./modules/storage"

  buckets       = local.buckets
  force_destroy = var.force_destroy_buckets
  tags          = var.tags
}

module "ingest" {
  source = "./modules/ingest"

  name                          = local.prefix
  account_id                    = local.account_id
  input_bucket_id               = module.storage.ids["input"]
  input_bucket_arn              = module.storage.arns["input"]
  filter_prefix                 = var.input_prefix
  filter_suffix                 = var.input_suffix
  enable_input_events_topic     = var.enable_input_events_topic
  visibility_timeout_seconds    = local.visibility_timeout_seconds
  max_receive_count             = var.queue_max_receive_count
  message_retention_seconds     = var.queue_message_retention_seconds
  dlq_message_retention_seconds = var.dlq_message_retention_seconds
  sns_kms_key_arn               = var.sns_kms_key_arn
  tags                          = var.tags
}

module "tables" {
  source = "./modules/tables"

  name                = local.prefix
  results_keys        = var.results_table_keys
  aggregates_keys     = var.aggregates_table_keys
  ttl_attribute       = var.ttl_attribute
  deletion_protection = var.table_deletion_protection
  tags                = var.tags
}

module "notifications" {
  source = "./modules/notifications"

  name                        = local.prefix
  account_id                  = local.account_id
  create_example_subscription = var.create_notify_example_subscription
  example_filter_policy       = local.notify_filter_policy
  alerts_email                = var.alerts_email
  sns_kms_key_arn             = var.sns_kms_key_arn
  tags                        = var.tags
}

module "function" {
  source = "./modules/function"

  name                    = local.prefix
  pipeline                = var.pipeline
  zip_path                = local.lambda_zip_path
  architecture            = var.lambda_architecture
  memory_mb               = var.lambda_memory_mb
  timeout_seconds         = var.lambda_timeout_seconds
  reserved_concurrency    = var.lambda_reserved_concurrency
  log_retention_days      = var.log_retention_days
  plugins_bucket_name     = module.storage.ids["plugins"]
  plugins_bucket_arn      = module.storage.arns["plugins"]
  manifest_key            = local.manifest_key
  input_bucket_arn        = module.storage.arns["input"]
  input_prefix            = var.input_prefix
  output_bucket_name      = local.bucket_names.output
  output_bucket_arn       = local.output_bucket_arn
  output_prefix           = var.output_prefix
  results_table_name      = module.tables.names["results"]
  results_table_arn       = module.tables.arns["results"]
  aggregates_table_name   = module.tables.names["aggregates"]
  aggregates_table_arn    = module.tables.arns["aggregates"]
  notify_topic_arn        = module.notifications.notify_topic_arn
  sns_kms_key_arn         = var.sns_kms_key_arn
  input_queue_arn         = module.ingest.input_queue_arn
  rejects_queue_arn       = module.ingest.rejects_queue_arn
  rejects_queue_url       = module.ingest.rejects_queue_url
  refresh_seconds         = var.refresh_seconds
  signing_keys            = var.signing_keys
  cache_dir               = var.cache_dir
  rust_log                = var.rust_log
  batch_size              = var.batch_size
  batching_window_seconds = var.batching_window_seconds
  max_concurrency         = var.max_concurrency
  tags                    = var.tags
}

module "monitoring" {
  source = "./modules/monitoring"

  name                                 = local.prefix
  pipeline                             = var.pipeline
  region                               = local.region
  alerts_topic_arn                     = module.notifications.alerts_topic_arn
  function_name                        = module.function.function_name
  input_queue_name                     = module.ingest.input_queue_name
  input_dlq_name                       = module.ingest.input_dlq_name
  rejects_queue_name                   = module.ingest.rejects_queue_name
  period_seconds                       = var.alarm_period_seconds
  dlq_depth_threshold                  = var.dlq_depth_threshold
  rejects_depth_threshold              = var.rejects_depth_threshold
  errors_threshold                     = var.errors_threshold
  throttles_threshold                  = var.throttles_threshold
  oldest_message_age_threshold_seconds = var.oldest_message_age_threshold_seconds
  plugin_refusals_threshold            = var.plugin_refusals_threshold
  tags                                 = var.tags
}

module "analytics" {
  source = "./modules/analytics"

  database_name           = replace(local.prefix, "-", "_")
  table_name              = "records"
  output_bucket_name      = local.bucket_names.output
  output_prefix           = var.output_prefix
  columns                 = var.output_columns
  partition_start_date    = var.partition_start_date
  enable_athena_workgroup = var.enable_athena_workgroup
  workgroup_name          = local.prefix
  athena_results_prefix   = var.athena_results_prefix
  force_destroy           = var.force_destroy_buckets
  tags                    = var.tags

  # Query results land in the output bucket: create it first.
  depends_on = [module.storage]
}
