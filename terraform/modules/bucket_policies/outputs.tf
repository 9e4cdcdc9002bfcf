output "buckets" {
  description = "Buckets with the TLS-only policy attached, keyed by role."
  value       = { for k, p in aws_s3_bucket_policy.tls_only : k => p.bucket }
}
