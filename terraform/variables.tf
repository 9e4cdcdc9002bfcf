# ---------------------------------------------------------------------------
# Naming
# ---------------------------------------------------------------------------

variable "name" {
  description = "Prefix of every resource name."
  type        = string
  default     = "weir"

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{1,20}$", var.name))
    error_message = "name must be 2-21 characters of lowercase letters, digits and hyphens, starting with a letter."
  }
}

variable "pipeline" {
  description = "Pipeline name: selects the manifest, names the resources (<name>-<pipeline>-...) and is the Pipeline dimension of Weir/PluginRefusals."
  type        = string
  default     = "main"

  validation {
    condition     = can(regex("^[a-z0-9][a-z0-9-]{0,20}$", var.pipeline))
    error_message = "pipeline must be 1-21 characters of lowercase letters, digits and hyphens."
  }
}

variable "tags" {
  description = "Tags applied to every resource that takes tags."
  type        = map(string)
  default     = {}
}

# ---------------------------------------------------------------------------
# Buckets
# ---------------------------------------------------------------------------

variable "plugins_bucket_name" {
  description = "Name of the plugins bucket; null = <name>-<pipeline>-plugins-<account>-<region>."
  type        = string
  default     = null
}

variable "input_bucket_name" {
  description = "Name of the input bucket; null = <name>-<pipeline>-input-<account>-<region>."
  type        = string
  default     = null
}

variable "create_output_bucket" {
  description = "Create the output bucket (true) or reuse the existing bucket named by output_bucket_name (false)."
  type        = bool
  default     = true
}

variable "output_bucket_name" {
  description = "Name of the output bucket; null = <name>-<pipeline>-output-<account>-<region>. Required when create_output_bucket is false."
  type        = string
  default     = null

  validation {
    condition     = var.create_output_bucket || var.output_bucket_name != null
    error_message = "output_bucket_name is required when create_output_bucket is false."
  }
}

variable "output_prefix" {
  description = "Key prefix of processed output in the output bucket, without leading or trailing slash; objects go to <prefix>/dt=YYYY-MM-DD/."
  type        = string
  default     = "processed"

  validation {
    condition     = can(regex("^[A-Za-z0-9_.=-]+(/[A-Za-z0-9_.=-]+)*$", var.output_prefix))
    error_message = "output_prefix must be non-empty, without leading or trailing slash, and without '*'."
  }
}

variable "athena_results_prefix" {
  description = "Key prefix in the output bucket for Athena query results, without slashes; must differ from output_prefix."
  type        = string
  default     = "athena-results"

  validation {
    condition     = can(regex("^[A-Za-z0-9_.-]+$", var.athena_results_prefix)) && var.athena_results_prefix != split("/", var.output_prefix)[0]
    error_message = "athena_results_prefix must be one path segment and must not be the first segment of output_prefix."
  }
}

variable "force_destroy_buckets" {
  description = "Let terraform destroy non-empty buckets (and delete every object version). Keep false in production."
  type        = bool
  default     = false
}

variable "plugins_noncurrent_version_days" {
  description = "Days after which non-current versions of plugins and manifests are deleted (rollback window)."
  type        = number
  default     = 90
}

variable "input_expiration_days" {
  description = "Days after which input objects are deleted; null keeps them."
  type        = number
  default     = 30
}

variable "output_noncurrent_version_days" {
  description = "Days after which non-current versions in the input and output buckets are deleted."
  type        = number
  default     = 30
}

# ---------------------------------------------------------------------------
# Input events and queues
# ---------------------------------------------------------------------------

variable "input_prefix" {
  description = "Only objects whose key starts with this prefix trigger the pipeline (empty = all)."
  type        = string
  default     = "incoming/"

  validation {
    condition     = !strcontains(var.input_prefix, "*") && !startswith(var.input_prefix, "/")
    error_message = "input_prefix must not contain '*' or start with '/'."
  }
}

variable "input_suffix" {
  description = "Only objects whose key ends with this suffix trigger the pipeline (empty = all)."
  type        = string
  default     = ".csv"
}

variable "enable_input_events_topic" {
  description = "Route object-created events through an SNS topic (S3 -> SNS -> input queue, raw delivery) so other consumers can subscribe to the same events."
  type        = bool
  default     = false
}

variable "queue_max_receive_count" {
  description = "Receives of one input message before it moves to the input dead-letter queue."
  type        = number
  default     = 5

  validation {
    condition     = var.queue_max_receive_count >= 1 && var.queue_max_receive_count <= 1000
    error_message = "queue_max_receive_count must be between 1 and 1000."
  }
}

variable "queue_visibility_timeout_seconds" {
  description = "Visibility timeout of the input queue, in seconds; null = 6 x lambda_timeout_seconds. Must be at least 6 x lambda_timeout_seconds (AWS's guidance for SQS event sources)."
  type        = number
  default     = null

  validation {
    condition     = var.queue_visibility_timeout_seconds == null || try(var.queue_visibility_timeout_seconds >= 6 * var.lambda_timeout_seconds && var.queue_visibility_timeout_seconds <= 43200, false)
    error_message = "queue_visibility_timeout_seconds must be at least 6 x lambda_timeout_seconds and at most 43200."
  }
}

variable "queue_message_retention_seconds" {
  description = "Retention of the input queue, in seconds."
  type        = number
  default     = 345600
}

variable "dlq_message_retention_seconds" {
  description = "Retention of the input dead-letter queue and the rejects queue, in seconds."
  type        = number
  default     = 1209600
}

# ---------------------------------------------------------------------------
# Tables
# ---------------------------------------------------------------------------

variable "results_table_keys" {
  description = "Key schema of the results table (hash key, optional range key; types S, N or B): the `key` of the published pipeline file's put or put-if-absent table."
  type = object({
    hash_key       = string
    hash_key_type  = optional(string, "S")
    range_key      = optional(string)
    range_key_type = optional(string, "S")
  })
  default = { hash_key = "pk" }
}

variable "aggregates_table_keys" {
  description = "Key schema of the aggregates table: a weir `aggregate` table has one key attribute (its `key`, holding the group), so a hash key only by default."
  type = object({
    hash_key       = string
    hash_key_type  = optional(string, "S")
    range_key      = optional(string)
    range_key_type = optional(string, "S")
  })
  default = { hash_key = "pk" }
}

variable "ttl_attribute" {
  description = "Name of the TTL attribute (epoch seconds) on both tables."
  type        = string
  default     = "expires_at"
}

variable "table_deletion_protection" {
  description = "Enable deletion protection on both tables."
  type        = bool
  default     = true
}

# ---------------------------------------------------------------------------
# Notifications
# ---------------------------------------------------------------------------

variable "create_notify_example_subscription" {
  description = "Create an example SQS queue subscribed to the notifications topic with notify_example_filter_policy."
  type        = bool
  default     = true
}

variable "notify_example_filter_policy" {
  description = "Filter policy (message attributes) of the example subscription; null = {pipeline = [<pipeline>]}."
  type        = map(list(string))
  default     = null
}

variable "alerts_email" {
  description = "E-mail address subscribed to the alerts topic; null for none."
  type        = string
  default     = null
}

variable "sns_kms_key_arn" {
  description = "Customer-managed KMS key ARN to encrypt the SNS topics; null leaves them unencrypted (the AWS-managed aws/sns key cannot be used by S3 or CloudWatch alarms). The key policy must allow cloudwatch.amazonaws.com and s3.amazonaws.com; the function's role is granted kms:GenerateDataKey and kms:Decrypt on it."
  type        = string
  default     = null
}

# ---------------------------------------------------------------------------
# Function
# ---------------------------------------------------------------------------

variable "lambda_zip_path" {
  description = "Path of the cargo-lambda zip; null = target/lambda/bootstrap/bootstrap.zip under the repository root (cargo lambda build --release --arm64 --output-format zip -p weir-lambda)."
  type        = string
  default     = null
}

variable "lambda_architecture" {
  description = "Instruction set of the function; must match the build (--arm64 builds arm64)."
  type        = string
  default     = "arm64"

  validation {
    condition     = contains(["arm64", "x86_64"], var.lambda_architecture)
    error_message = "lambda_architecture must be arm64 or x86_64."
  }
}

variable "lambda_memory_mb" {
  description = "Memory of the function, in MB (also scales its CPU)."
  type        = number
  default     = 512

  validation {
    condition     = var.lambda_memory_mb >= 128 && var.lambda_memory_mb <= 10240
    error_message = "lambda_memory_mb must be between 128 and 10240."
  }
}

variable "lambda_timeout_seconds" {
  description = "Timeout of one invocation, in seconds."
  type        = number
  default     = 60

  validation {
    condition     = var.lambda_timeout_seconds >= 1 && var.lambda_timeout_seconds <= 900
    error_message = "lambda_timeout_seconds must be between 1 and 900."
  }
}

variable "lambda_reserved_concurrency" {
  description = "Reserved concurrent executions of the function; -1 = unreserved."
  type        = number
  default     = 10
}

variable "log_retention_days" {
  description = "Retention of the function's log group, in days."
  type        = number
  default     = 30
}

variable "rust_log" {
  description = "RUST_LOG of the function."
  type        = string
  default     = "info"
}

variable "manifest_key" {
  description = "Key of the pipeline manifest in the plugins bucket; null = pipelines/<pipeline>/manifest.json."
  type        = string
  default     = null
}

variable "refresh_seconds" {
  description = "How often the function re-reads the manifest to hot-reload plugins, in seconds; 0 = every invocation."
  type        = number
  default     = 30

  validation {
    condition     = var.refresh_seconds >= 0
    error_message = "refresh_seconds must be 0 or more."
  }
}

variable "signing_keys" {
  description = "Base64 ed25519 public keys trusted to sign plugins; empty = signatures not checked."
  type        = list(string)
  default     = []

  validation {
    condition     = alltrue([for k in var.signing_keys : can(regex("^[A-Za-z0-9+/]{43}=$", k))])
    error_message = "signing_keys must be base64 ed25519 public keys (32 bytes: 43 characters and '=')."
  }
}

variable "cache_dir" {
  description = "Plugin cache directory inside the function."
  type        = string
  default     = "/tmp/weir-cache"
}

variable "batch_size" {
  description = "Maximum messages per invocation from the input queue (1-10000; above 10 needs a batching window)."
  type        = number
  default     = 10

  validation {
    condition     = var.batch_size >= 1 && var.batch_size <= 10000
    error_message = "batch_size must be between 1 and 10000."
  }
}

variable "batching_window_seconds" {
  description = "Maximum seconds to gather a batch before invoking (0-300)."
  type        = number
  default     = 5

  validation {
    condition     = var.batching_window_seconds >= 0 && var.batching_window_seconds <= 300 && (var.batch_size <= 10 || var.batching_window_seconds >= 1)
    error_message = "batching_window_seconds must be 0-300, and at least 1 when batch_size is above 10."
  }
}

variable "max_concurrency" {
  description = "Maximum concurrent invocations by the SQS event source (2-1000); null = no limit. Keep it at or below lambda_reserved_concurrency."
  type        = number
  default     = 5

  validation {
    condition     = var.max_concurrency == null || try(var.max_concurrency >= 2 && var.max_concurrency <= 1000 && (var.lambda_reserved_concurrency < 0 || var.max_concurrency <= var.lambda_reserved_concurrency), false)
    error_message = "max_concurrency must be 2-1000 and not above lambda_reserved_concurrency."
  }
}

# ---------------------------------------------------------------------------
# Monitoring
# ---------------------------------------------------------------------------

variable "alarm_period_seconds" {
  description = "Period of every alarm, in seconds."
  type        = number
  default     = 300
}

variable "dlq_depth_threshold" {
  description = "Alarm when the input DLQ holds more than this many messages."
  type        = number
  default     = 0
}

variable "rejects_depth_threshold" {
  description = "Alarm when the rejects queue holds more than this many messages."
  type        = number
  default     = 100
}

variable "errors_threshold" {
  description = "Alarm when the function errors more than this many times in one period."
  type        = number
  default     = 0
}

variable "throttles_threshold" {
  description = "Alarm when the function is throttled more than this many times in one period."
  type        = number
  default     = 0
}

variable "oldest_message_age_threshold_seconds" {
  description = "Alarm when the oldest input message is older than this, in seconds."
  type        = number
  default     = 900
}

variable "plugin_refusals_threshold" {
  description = "Alarm when plugins refuse more than this many records in one period."
  type        = number
  default     = 0
}

# ---------------------------------------------------------------------------
# Analytics
# ---------------------------------------------------------------------------

variable "enable_athena_workgroup" {
  description = "Create the Athena workgroup (disable where the API is unavailable, e.g. some emulators)."
  type        = bool
  default     = true
}

variable "output_columns" {
  description = "Columns of the processed JSON lines (Hive types) in the Glue table; dt is the partition key."
  type = list(object({
    name    = string
    type    = string
    comment = optional(string)
  }))
  default = [
    { name = "pipeline", type = "string", comment = "pipeline that processed the record" },
    { name = "source", type = "string", comment = "where the record came from, e.g. s3://bucket/key#line" },
    { name = "record_id", type = "string", comment = "stable id of the input record" },
    { name = "processed_at", type = "string", comment = "RFC 3339 time of processing" },
    { name = "payload", type = "string", comment = "plugin output, JSON text" },
  ]
}

variable "partition_start_date" {
  description = "First dt (YYYY-MM-DD) covered by partition projection."
  type        = string
  default     = "2025-01-01"

  validation {
    condition     = can(regex("^[0-9]{4}-[0-9]{2}-[0-9]{2}$", var.partition_start_date))
    error_message = "partition_start_date must be YYYY-MM-DD."
  }
}
