output "ids" {
  description = "Bucket names keyed by role."
  value       = { for k, b in aws_s3_bucket.this : k => b.bucket }
}

output "arns" {
  description = "Bucket ARNs keyed by role."
  value       = { for k, b in aws_s3_bucket.this : k => "arn:${data.aws_partition.current.partition}:s3:::${b.bucket}" }
}
