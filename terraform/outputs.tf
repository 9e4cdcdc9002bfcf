output "plugins_bucket" {
  description = "Bucket `weir publish` writes plugins and the manifest to."
  value       = module.storage.ids["plugins"]
}

output "manifest_key" {
  description = "Key of the pipeline manifest in the plugins bucket."
  value       = local.manifest_key
}

output "input_bucket" {
  description = "Bucket whose object-created events (filtered by prefix and suffix) feed the pipeline."
  value       = module.storage.ids["input"]
}

output "output_bucket" {
  description = "Bucket holding processed output."
  value       = local.bucket_names.output
}

output "output_location" {
  description = "S3 location of processed output (JSON lines under dt=YYYY-MM-DD/)."
  value       = module.analytics.table_location
}

output "input_queue_url" {
  description = "URL of the input queue."
  value       = module.ingest.input_queue_url
}

output "input_queue_arn" {
  description = "ARN of the input queue."
  value       = module.ingest.input_queue_arn
}

output "input_queue_redrive_policy" {
  description = "Redrive policy of the input queue."
  value       = module.ingest.input_queue_redrive_policy
}

output "input_queue_visibility_timeout_seconds" {
  description = "Visibility timeout of the input queue, in seconds."
  value       = module.ingest.input_queue_visibility_timeout_seconds
}

output "input_dlq_url" {
  description = "URL of the input dead-letter queue."
  value       = module.ingest.input_dlq_url
}

output "input_dlq_arn" {
  description = "ARN of the input dead-letter queue."
  value       = module.ingest.input_dlq_arn
}

output "rejects_queue_url" {
  description = "URL of the queue for records rejected by plugins."
  value       = module.ingest.rejects_queue_url
}

output "input_events_topic_arn" {
  description = "ARN of the input events fan-out topic, or null."
  value       = module.ingest.input_events_topic_arn
}

output "input_notification" {
  description = "The input bucket's notification: destination kind and filters."
  value       = module.ingest.notification
}

output "results_table" {
  description = "Name of the results table."
  value       = module.tables.names["results"]
}

output "aggregates_table" {
  description = "Name of the aggregates table."
  value       = module.tables.names["aggregates"]
}

output "notify_topic_arn" {
  description = "ARN of the notifications topic."
  value       = module.notifications.notify_topic_arn
}

output "alerts_topic_arn" {
  description = "ARN of the alerts topic."
  value       = module.notifications.alerts_topic_arn
}

output "notify_example_queue_url" {
  description = "URL of the example filtered subscriber queue, or null."
  value       = module.notifications.example_subscriber_queue_url
}

output "notify_example_subscription_arn" {
  description = "ARN of the example filtered subscription, or null."
  value       = module.notifications.example_subscription_arn
}

output "notify_example_filter_policy" {
  description = "Filter policy of the example subscription."
  value       = module.notifications.example_filter_policy
}

output "function_name" {
  description = "Name of the weir function."
  value       = module.function.function_name
}

output "function_arn" {
  description = "ARN of the weir function."
  value       = module.function.function_arn
}

output "function_role_arn" {
  description = "ARN of the function's role."
  value       = module.function.role_arn
}

output "function_environment" {
  description = "Environment of the function."
  value       = module.function.environment
}

output "function_policy_statements" {
  description = "Statements of the function role's policy."
  value       = module.function.policy_statements
}

output "log_group_name" {
  description = "Log group of the function."
  value       = module.function.log_group_name
}

output "event_source_mapping_uuid" {
  description = "UUID of the SQS event source mapping."
  value       = module.function.event_source_mapping_uuid
}

output "event_source_mapping" {
  description = "Settings of the SQS event source mapping."
  value       = module.function.event_source_mapping
}

output "alarms" {
  description = "Metric and actions of every alarm."
  value       = module.monitoring.alarms
}

output "dashboard_name" {
  description = "Name of the CloudWatch dashboard."
  value       = module.monitoring.dashboard_name
}

output "glue_database" {
  description = "Glue catalog database of processed output."
  value       = module.analytics.database_name
}

output "glue_table" {
  description = "Glue catalog table of processed output."
  value       = module.analytics.table_name
}

output "athena_workgroup" {
  description = "Athena workgroup for queries, or null."
  value       = module.analytics.workgroup_name
}
