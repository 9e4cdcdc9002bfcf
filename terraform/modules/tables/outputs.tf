output "names" {
  description = "Table names keyed by role (results, aggregates)."
  value       = { for k, t in aws_dynamodb_table.this : k => t.name }
}

output "arns" {
  description = "Table ARNs keyed by role (results, aggregates)."
  value       = { for k, t in aws_dynamodb_table.this : k => t.arn }
}
