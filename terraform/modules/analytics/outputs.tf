output "database_name" {
  description = "Glue catalog database name."
  value       = aws_glue_catalog_database.this.name
}

output "tables" {
  description = "Glue tables keyed by name: the pipeline and objects sink each covers and its S3 location."
  value = { for k, t in aws_glue_catalog_table.records : k => {
    pipeline = var.tables[k].pipeline
    sink     = var.tables[k].sink
    location = t.storage_descriptor[0].location
  } }
}

output "workgroup_name" {
  description = "Athena workgroup name, or null when disabled."
  value       = var.enable_athena_workgroup ? aws_athena_workgroup.this[0].name : null
}
