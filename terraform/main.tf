# weir: S3 object-created events and SQS batches flow through user WebAssembly plugins,
# one Lambda per pipeline, into the DynamoDB tables, SNS topics, S3 prefixes (queryable
# with Athena) and rejects queue that the pipeline's plan names.
# Shared: the plugins, input and output buckets, the alerts topic, the dashboard, the
# Glue database and Athena workgroup. Per pipeline (var.pipelines): everything else.
# Each concern is a module; this file only wires them together.

module "storage" {
  source = "./modules/storage"

  buckets       = local.buckets
  force_destroy = var.force_destroy_buckets
  tags          = var.tags
}

# After the public access blocks (module.storage) and the bindings documents
# (module.function): see the module's header.
module "bucket_policies" {
  source = "./modules/bucket_policies"

  buckets = module.storage.ids

  depends_on = [module.storage, module.function]
}

module "ingest" {
  source = "./modules/ingest"

  name       = var.name
  account_id = local.account_id
  pipelines = { for k, p in var.pipelines : k => {
    visibility_timeout_seconds = local.pipelines[k].visibility_timeout_seconds
    max_receive_count          = p.queue_max_receive_count
    rejects_queue_name         = local.pipelines[k].rejects_queue_name
    s3                         = contains(keys(local.s3_inputs), k) ? { via_sns = local.s3_inputs[k].via_sns } : null
  } }
  rules                         = local.s3_rules
  input_bucket_id               = module.storage.ids["input"]
  input_bucket_arn              = module.storage.arns["input"]
  message_retention_seconds     = var.queue_message_retention_seconds
  dlq_message_retention_seconds = var.dlq_message_retention_seconds
  sns_kms_key_arn               = var.sns_kms_key_arn
  tags                          = var.tags
}

module "tables" {
  source = "./modules/tables"

  tables = merge([for k, p in local.pipelines : {
    for l, t in p.tables : t.name => { hash_key = t.hash_key, range_key = t.range_key }
  }]...)
  ttl_attribute       = var.ttl_attribute
  deletion_protection = var.table_deletion_protection
  tags                = var.tags
}

module "notifications" {
  source = "./modules/notifications"

  name       = var.name
  account_id = local.account_id
  topics = merge([for k, p in local.pipelines : {
    for l, t in p.topics : t.name => { fifo = t.fifo }
  }]...)
  alerts_email    = var.alerts_email
  sns_kms_key_arn = var.sns_kms_key_arn
  tags            = var.tags
}

module "function" {
  source   = "./modules/function"
  for_each = var.pipelines

  name                 = local.pipelines[each.key].prefix
  pipeline             = each.key
  zip_path             = local.lambda_zip_path
  architecture         = var.lambda_architecture
  memory_mb            = each.value.memory_mb
  timeout_seconds      = each.value.timeout_seconds
  reserved_concurrency = each.value.reserved_concurrency
  log_retention_days   = var.log_retention_days
  plugins_bucket_name  = module.storage.ids["plugins"]
  plugins_bucket_arn   = module.storage.arns["plugins"]
  manifest_key         = local.pipelines[each.key].manifest_key
  bindings_key         = local.pipelines[each.key].bindings_key
  input_bucket_arn     = module.storage.arns["input"]
  input_prefix         = try(local.s3_inputs[each.key].prefix, null)
  output_bucket_name   = local.bucket_names.output
  output_bucket_arn    = local.output_bucket_arn
  tables = { for l, t in local.pipelines[each.key].tables : l => {
    name      = t.name
    arn       = module.tables.arns[t.name]
    hash_key  = t.hash_key
    range_key = t.range_key
  } }
  topics                  = { for l, t in local.pipelines[each.key].topics : l => { arn = module.notifications.topic_arns[t.name] } }
  objects                 = { for l, o in local.pipelines[each.key].objects : l => { prefix = o.prefix } }
  dead_letters_prefix     = local.pipelines[each.key].dead_letters_prefix
  checkpoints_prefix      = local.pipelines[each.key].checkpoints_prefix
  rejects_queue_arn       = module.ingest.pipelines[each.key].rejects_queue_arn
  rejects_queue_url       = module.ingest.pipelines[each.key].rejects_queue_url
  input_queue_arn         = module.ingest.pipelines[each.key].input_queue_arn
  input_queue_url         = module.ingest.pipelines[each.key].input_queue_url
  sns_kms_key_arn         = var.sns_kms_key_arn
  refresh_seconds         = each.value.refresh_seconds
  signing_keys            = each.value.signing_keys
  cache_dir               = var.cache_dir
  rust_log                = var.rust_log
  batch_size              = each.value.batch_size
  batching_window_seconds = each.value.batching_window_seconds
  max_concurrency         = each.value.max_concurrency
  tags                    = var.tags
}

module "monitoring" {
  source = "./modules/monitoring"

  name             = var.name
  region           = local.region
  alerts_topic_arn = module.notifications.alerts_topic_arn
  pipelines = { for k, p in var.pipelines : k => {
    function_name      = module.function[k].function_name
    input_queue_name   = module.ingest.pipelines[k].input_queue_name
    input_dlq_name     = module.ingest.pipelines[k].input_dlq_name
    rejects_queue_name = module.ingest.pipelines[k].rejects_queue_name
  } }
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

  database_name           = replace(var.name, "-", "_")
  tables                  = local.glue_tables
  output_bucket_name      = local.bucket_names.output
  columns                 = var.output_columns
  partition_start_date    = var.partition_start_date
  enable_athena_workgroup = var.enable_athena_workgroup
  workgroup_name          = var.name
  athena_results_prefix   = var.athena_results_prefix
  force_destroy           = var.force_destroy_buckets
  tags                    = var.tags

  # Query results land in the output bucket: create it first.
  depends_on = [module.storage]
}
