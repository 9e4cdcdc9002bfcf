output "database_name" {
  description = "Glue catalog database name."
  value       = aws_glue_catalog_database.this.name
}

output "table_name" {
  description = "Glue catalog table name."
  value       = aws_glue_catalog_table.records.name
}

output "table_location" {
  description = "S3 location of the table."
  value       = local.location
}

output "workgroup_name" {
  description = "Athena workgroup name, or null when disabled."
  value       = var.enable_athena_workgroup ? aws_athena_workgroup.this[0].name : null
}
