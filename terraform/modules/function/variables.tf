variable "name" {
  description = "Function name, e.g. weir-orders; also names the role and the log group."
  type        = string
}

variable "pipeline" {
  description = "Pipeline this function runs (WEIR_PIPELINE)."
  type        = string
}

variable "zip_path" {
  description = "Path of the deployment zip built by cargo-lambda (contains the `bootstrap` binary)."
  type        = string
}

variable "architecture" {
  description = "Instruction set of the function: arm64 or x86_64 (must match the cargo lambda build)."
  type        = string
}

variable "memory_mb" {
  description = "Memory of the function, in MB."
  type        = number
}

variable "timeout_seconds" {
  description = "Timeout of one invocation, in seconds."
  type        = number
}

variable "reserved_concurrency" {
  description = "Reserved concurrent executions; -1 for none."
  type        = number
}

variable "log_retention_days" {
  description = "Retention of the function's log group, in days."
  type        = number
}

variable "plugins_bucket_arn" {
  description = "ARN of the plugins bucket (manifests, bindings and .wasm objects)."
  type        = string
}

variable "plugins_bucket_name" {
  description = "Name of the plugins bucket."
  type        = string
}

variable "manifest_key" {
  description = "Key of the pipeline manifest in the plugins bucket (pipelines/<pipeline>/manifest.json)."
  type        = string
}

variable "bindings_key" {
  description = "Key of the bindings document this module writes in the plugins bucket (pipelines/<pipeline>/bindings.json)."
  type        = string
}

variable "input_bucket_arn" {
  description = "ARN of the input bucket the function reads objects from."
  type        = string
}

variable "input_prefix" {
  description = "Key prefix of the input objects this pipeline may read (its notification filter prefix), or null without an S3 input."
  type        = string
  default     = null
}

variable "output_bucket_arn" {
  description = "ARN of the output bucket."
  type        = string
}

variable "output_bucket_name" {
  description = "Name of the output bucket."
  type        = string
}

variable "tables" {
  description = "The plan's tables, keyed by logical name: physical name, ARN and key schema."
  type = map(object({
    name      = string
    arn       = string
    hash_key  = string
    range_key = optional(string)
  }))
}

variable "topics" {
  description = "The plan's topics, keyed by logical name: ARN."
  type = map(object({
    arn = string
  }))
}

variable "objects" {
  description = "The plan's objects sinks, keyed by logical name: key prefix in the output bucket (<pipeline>/<plan prefix>)."
  type = map(object({
    prefix = string
  }))
}

variable "dead_letters_prefix" {
  description = "Key prefix in the output bucket for dead letters too large for SQS (weir-dead-letters/<pipeline>/)."
  type        = string
}

variable "checkpoints_prefix" {
  description = "Key prefix in the output bucket for checkpoints (weir-checkpoints/<pipeline>/)."
  type        = string
}

variable "rejects_queue_arn" {
  description = "ARN of the queue for records rejected by plugins."
  type        = string
}

variable "rejects_queue_url" {
  description = "URL of the queue for records rejected by plugins."
  type        = string
}

variable "input_queue_arn" {
  description = "ARN of the input queue (event source)."
  type        = string
}

variable "input_queue_url" {
  description = "URL of the input queue, where the function continues objects cut off by its deadline."
  type        = string
}

variable "sns_kms_key_arn" {
  description = "Customer-managed KMS key of the SNS topics, or null (then no KMS grant)."
  type        = string
  default     = null
}

variable "refresh_seconds" {
  description = "How often the manifest is re-read, in seconds (0 = every invocation)."
  type        = number
}

variable "signing_keys" {
  description = "Base64 ed25519 public keys accepted as plugin signers (may be empty)."
  type        = list(string)
}

variable "cache_dir" {
  description = "Plugin cache directory inside the function."
  type        = string
}

variable "rust_log" {
  description = "RUST_LOG filter directive."
  type        = string
}

variable "batch_size" {
  description = "Maximum records per invocation from the input queue."
  type        = number
}

variable "batching_window_seconds" {
  description = "Maximum seconds to gather a batch before invoking."
  type        = number
}

variable "max_concurrency" {
  description = "Maximum concurrent invocations by the SQS event source (2-1000), or null for no limit."
  type        = number
  default     = null
}

variable "tags" {
  description = "Tags applied to every resource."
  type        = map(string)
  default     = {}
}
