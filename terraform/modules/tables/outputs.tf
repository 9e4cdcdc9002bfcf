output "arns" {
  description = "Table ARNs keyed by table name."
  value       = { for k, t in aws_dynamodb_table.this : k => t.arn }
}

output "key_schemas" {
  description = "Hash and range key of every table, keyed by table name."
  value       = { for k, t in aws_dynamodb_table.this : k => { hash_key = t.hash_key, range_key = t.range_key } }
}
