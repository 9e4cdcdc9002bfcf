output "plugins_bucket" {
  description = "Publish plugins here: weir publish <plugin.wasm> --pipeline NAME --stage STAGE."
  value       = module.weir.plugins_bucket
}

output "input_bucket" {
  description = "Drop input objects under the input prefix here."
  value       = module.weir.input_bucket
}

output "input_queue_url" {
  description = "Send SQS test messages here."
  value       = module.weir.input_queue_url
}

output "function_name" {
  description = "Name of the weir function."
  value       = module.weir.function_name
}

output "log_group_name" {
  description = "Log group of the function."
  value       = module.weir.log_group_name
}

output "dashboard_name" {
  description = "CloudWatch dashboard."
  value       = module.weir.dashboard_name
}

output "athena_workgroup" {
  description = "Athena workgroup for queries."
  value       = module.weir.athena_workgroup
}

output "glue_table" {
  description = "Glue database.table of processed output."
  value       = "${module.weir.glue_database}.${module.weir.glue_table}"
}

output "manifest_key" {
  description = "Key of the pipeline manifest in the plugins bucket."
  value       = module.weir.manifest_key
}

output "rejects_queue_url" {
  description = "Records refused by plugins arrive here."
  value       = module.weir.rejects_queue_url
}
