variable "buckets" {
  description = "Buckets to create, keyed by role (plugins, input, output). Every bucket gets versioning, SSE-S3, a public access block, BucketOwnerEnforced, a TLS-only policy and a lifecycle that expires old versions and aborts stale multipart uploads."
  type = map(object({
    name                               = string
    noncurrent_version_expiration_days = number
    current_version_expiration_days    = optional(number)
  }))
}

variable "force_destroy" {
  description = "Allow terraform destroy to delete non-empty buckets (all object versions are lost)."
  type        = bool
  default     = false
}

variable "tags" {
  description = "Tags applied to every resource."
  type        = map(string)
  default     = {}
}
