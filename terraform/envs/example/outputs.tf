output "plugins_bucket" {
  description = "Publish plugins here: weir publish --definition examples/orders/weir.toml --pipeline orders."
  value       = module.weir.plugins_bucket
}

output "input_bucket" {
  description = "Drop input objects under a pipeline's input prefix here (orders: incoming/orders/*.csv)."
  value       = module.weir.input_bucket
}

output "output_bucket" {
  description = "Every pipeline's objects sinks write under <pipeline>/ here."
  value       = module.weir.output_bucket
}

output "input_queue_urls" {
  description = "Send SQS test messages here, per pipeline."
  value       = { for k, p in module.weir.pipelines : k => p.input_queue_url }
}

output "rejects_queue_urls" {
  description = "Records refused by plugins arrive here, per pipeline."
  value       = { for k, p in module.weir.pipelines : k => p.rejects_queue_url }
}

output "function_names" {
  description = "Name of each pipeline's function."
  value       = { for k, p in module.weir.pipelines : k => p.function_name }
}

output "log_group_names" {
  description = "Log group of each pipeline's function."
  value       = { for k, p in module.weir.pipelines : k => p.log_group_name }
}

output "manifest_keys" {
  description = "Key of each pipeline's manifest in the plugins bucket."
  value       = { for k, p in module.weir.pipelines : k => p.manifest_key }
}

output "bindings_keys" {
  description = "Key of each pipeline's bindings document in the plugins bucket."
  value       = { for k, p in module.weir.pipelines : k => p.bindings_key }
}

output "dashboard_name" {
  description = "CloudWatch dashboard."
  value       = module.weir.dashboard_name
}

output "athena_workgroup" {
  description = "Athena workgroup for queries."
  value       = module.weir.athena_workgroup
}

output "glue_tables" {
  description = "Glue database.table of each pipeline's objects sink."
  value       = [for t, _ in module.weir.glue_tables : "${module.weir.glue_database}.${t}"]
}
