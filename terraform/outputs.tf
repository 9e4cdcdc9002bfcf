# Shared resources.

output "plugins_bucket" {
  description = "Bucket `weir publish` writes plugins and manifests to, and terraform each pipeline's bindings document."
  value       = module.storage.ids["plugins"]
}

output "input_bucket" {
  description = "Bucket whose object-created events (filtered by each pipeline's prefix and suffixes) feed the pipelines."
  value       = module.storage.ids["input"]
}

output "output_bucket" {
  description = "Bucket holding every pipeline's objects, dead letters and checkpoints, and the Athena results."
  value       = local.bucket_names.output
}

output "input_notification" {
  description = "The input bucket's one notification: its queue rules and topic rules."
  value       = module.ingest.notification
}

output "alerts_topic_arn" {
  description = "ARN of the alerts topic."
  value       = module.notifications.alerts_topic_arn
}

output "dashboard_name" {
  description = "Name of the CloudWatch dashboard."
  value       = module.monitoring.dashboard_name
}

output "glue_database" {
  description = "Glue catalog database of the pipelines' objects sinks."
  value       = module.analytics.database_name
}

output "glue_tables" {
  description = "Glue tables keyed by name (<pipeline>_<objects sink>, '-' as '_'): pipeline, sink and S3 location of each."
  value       = module.analytics.tables
}

output "athena_workgroup" {
  description = "Athena workgroup for queries, or null."
  value       = module.analytics.workgroup_name
}

# Per pipeline.

output "pipelines" {
  description = "Per pipeline: its function (name, ARN, role, environment, policy statements, log group, event source mapping), manifest and bindings keys and the bindings document, its queues and input-events topic, the tables, topics and output prefixes of its sinks, and its alarms."
  value = { for k, p in var.pipelines : k => merge(module.ingest.pipelines[k], {
    function_name              = module.function[k].function_name
    function_arn               = module.function[k].function_arn
    function_role_arn          = module.function[k].role_arn
    function_environment       = module.function[k].environment
    function_policy_statements = module.function[k].policy_statements
    log_group_name             = module.function[k].log_group_name
    event_source_mapping_uuid  = module.function[k].event_source_mapping_uuid
    event_source_mapping       = module.function[k].event_source_mapping
    manifest_key               = local.pipelines[k].manifest_key
    bindings_key               = module.function[k].bindings_key
    bindings                   = module.function[k].bindings
    queue_input                = p.queue_input
    s3_input                   = try(local.s3_inputs[k], null)
    tables                     = { for l, t in local.pipelines[k].tables : l => { name = t.name, arn = module.tables.arns[t.name] } }
    topics                     = { for l, t in local.pipelines[k].topics : l => { name = t.name, arn = module.notifications.topic_arns[t.name] } }
    output_prefixes            = { for l, o in local.pipelines[k].objects : l => o.prefix }
    alarms                     = module.monitoring.alarms[k]
  }) }
}
