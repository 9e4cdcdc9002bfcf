variable "buckets" {
  description = "Buckets that get the TLS-only policy: bucket names keyed by role (plugins, input, output)."
  type        = map(string)
}
