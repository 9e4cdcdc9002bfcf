# ---------------------------------------------------------------------------
# Naming
# ---------------------------------------------------------------------------

variable "name" {
  description = "Prefix of every resource name: shared resources are <name>-<thing>, a pipeline's are <name>-<pipeline>-<thing>."
  type        = string
  default     = "weir"

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{1,20}$", var.name))
    error_message = "name must be 2-21 characters of lowercase letters, digits and hyphens, starting with a letter."
  }
}

variable "tags" {
  description = "Tags applied to every resource that takes tags."
  type        = map(string)
  default     = {}
}

# ---------------------------------------------------------------------------
# Pipelines
# ---------------------------------------------------------------------------

variable "pipelines" {
  description = "The pipelines to deploy, keyed by pipeline name (the name `weir publish --pipeline` uses). Each gets its own input queue and DLQ, function, role, alarms, rejects queue and the sinks its `plan` names (the JSON of `weir plan weir.toml`, decoded with jsondecode(file(...))); buckets, the alerts topic and the dashboard are shared. See docs/deploy.md for every field."
  type = map(object({
    # `weir plan weir.toml`: what the pipeline file needs deployed.
    plan = object({
      weir_plan = number
      pipeline  = string
      tables = map(object({
        mode      = string
        hash_key  = string
        range_key = optional(string)
      }))
      topics = map(object({
        fifo = bool
      }))
      objects = map(object({
        prefix    = string
        partition = string
        format    = string
      }))
      dead_letter = object({
        queue = string
      })
      source = object({
        prefix   = string
        suffixes = list(string)
      })
    })

    # Inputs. The input queue always exists (S3 events arrive through it); queue_input
    # says that producers also send records to it directly.
    queue_input = optional(bool, true)
    s3_input = optional(object({
      prefix   = optional(string) # null = plan.source.prefix
      suffixes = optional(list(string))
      via_sns  = optional(bool, false)
    }))

    # The function and its event source.
    batch_size                       = optional(number, 10)
    batching_window_seconds          = optional(number, 5)
    max_concurrency                  = optional(number, 5)
    reserved_concurrency             = optional(number, 10)
    memory_mb                        = optional(number, 512)
    timeout_seconds                  = optional(number, 60)
    queue_visibility_timeout_seconds = optional(number)
    queue_max_receive_count          = optional(number, 5)
    refresh_seconds                  = optional(number, 30)
    signing_keys                     = optional(list(string), [])
  }))

  validation {
    condition     = length(var.pipelines) > 0 && alltrue([for k in keys(var.pipelines) : can(regex("^[a-z0-9][a-z0-9-]{0,20}$", k))])
    error_message = "pipelines must name at least one pipeline; each name must be 1-21 characters of lowercase letters, digits and hyphens, starting with a letter or digit."
  }

  validation {
    # These are key prefixes of the shared output bucket that pipelines do not own.
    condition     = alltrue([for k in keys(var.pipelines) : !contains(["weir-dead-letters", "weir-checkpoints", var.athena_results_prefix], k)])
    error_message = "A pipeline must not be named weir-dead-letters, weir-checkpoints or after athena_results_prefix: its output prefix would overlap theirs."
  }

  validation {
    condition     = alltrue([for k, p in var.pipelines : p.plan.weir_plan == 1 && p.plan.pipeline == k])
    error_message = "Each plan must be a `weir plan` document (weir_plan = 1) of the pipeline it is deployed as (plan.pipeline = its key in pipelines)."
  }

  validation {
    condition = alltrue(flatten([for k, p in var.pipelines : [for l, t in p.plan.tables :
      can(regex("^[A-Za-z0-9_-]{1,64}$", l)) && contains(["put", "put-if-absent", "aggregate"], t.mode) &&
      t.hash_key != "" && (t.range_key == null ? true : t.range_key != "" && t.range_key != t.hash_key)
    ]]))
    error_message = "plan.tables: names are 1-64 letters, digits, '-' or '_'; mode is put, put-if-absent or aggregate; hash_key is set; range_key is null or another attribute."
  }

  validation {
    condition     = alltrue(flatten([for k, p in var.pipelines : [for l, t in p.plan.topics : can(regex("^[A-Za-z0-9_-]{1,200}(\\.fifo)?$", l)) && t.fifo == endswith(l, ".fifo")]]))
    error_message = "plan.topics: names are letters, digits, '-' or '_', and a FIFO topic's (fifo = true) and only its name ends in .fifo, as weir plan writes them."
  }

  validation {
    # The prefix is a folder: it is the Glue table's location and the IAM grant's key prefix.
    condition = alltrue(flatten([for k, p in var.pipelines : [for l, o in p.plan.objects :
      can(regex("^[A-Za-z0-9_-]{1,64}$", l)) && (o.prefix == "" || can(regex("^[^/*][^*]*/$", o.prefix)))
    ]]))
    error_message = "plan.objects: names are 1-64 letters, digits, '-' or '_'; prefix is empty or a key prefix ending in '/', not starting with '/', without '*'."
  }

  validation {
    condition = alltrue([for k, p in var.pipelines :
      can(regex("^[A-Za-z0-9_-]+$", p.plan.dead_letter.queue)) && !contains(["input", "input-dlq"], p.plan.dead_letter.queue) &&
      length("${var.name}-${k}-${p.plan.dead_letter.queue}") <= 80
    ])
    error_message = "plan.dead_letter.queue must be letters, digits, '-' or '_', not input or input-dlq (the pipeline's own queues), and <name>-<pipeline>-<queue> at most 80 characters."
  }

  validation {
    condition     = alltrue([for k, p in var.pipelines : p.queue_input || p.s3_input != null])
    error_message = "Every pipeline needs an input: queue_input = true, s3_input, or both."
  }

  # The checks below cannot use the locals built from var.pipelines (that would be a
  # cycle), so they derive what they need in place. `for x in [expr]` binds a name.

  validation {
    condition = alltrue([for k, p in var.pipelines : p.s3_input == null ? true : alltrue([
      for f in [p.s3_input.prefix != null ? p.s3_input.prefix : p.plan.source.prefix] :
      !startswith(f, "/") && !anytrue([for x in concat([f], p.s3_input.suffixes != null ? p.s3_input.suffixes : p.plan.source.suffixes) : strcontains(x, "*")])
    ])])
    error_message = "s3_input prefix and suffixes must not contain '*'; the prefix must not start with '/'."
  }

  validation {
    # One rule per (pipeline, suffix), as in local.s3_rules; two overlap when one prefix
    # starts the other and one suffix ends the other.
    condition = alltrue([for rules in [flatten([for k, p in var.pipelines : p.s3_input == null ? [] : [
      for suffix in(length(p.s3_input.suffixes != null ? p.s3_input.suffixes : p.plan.source.suffixes) == 0 ? [""] : (p.s3_input.suffixes != null ? p.s3_input.suffixes : p.plan.source.suffixes)) : {
        prefix = p.s3_input.prefix != null ? p.s3_input.prefix : p.plan.source.prefix
        suffix = suffix
      }
      ]])] : !anytrue(flatten([for i, a in rules : [for j, b in rules :
      (startswith(a.prefix, b.prefix) || startswith(b.prefix, a.prefix)) && (endswith(a.suffix, b.suffix) || endswith(b.suffix, a.suffix))
    if i < j]]))])
    error_message = "The S3 inputs of the pipelines overlap (one prefix starts another and one suffix ends another): S3 refuses overlapping notification filters for the same event."
  }

  validation {
    # As in local.names: <name>-<a>-<x> and <name>-<a-b>-<y> could otherwise be one name.
    condition = alltrue([for names in [flatten([for k, p in var.pipelines : concat(
      [for q in ["input", "input-dlq", p.plan.dead_letter.queue] : "queue ${var.name}-${k}-${q}"],
      [for l, t in p.plan.topics : "topic ${var.name}-${k}-${l}"],
      p.s3_input == null ? [] : ["topic ${var.name}-${k}-input-events"],
      [for l, t in p.plan.tables : "table ${var.name}-${k}-${l}"],
      [for l, o in p.plan.objects : "glue ${lower(replace("${k}_${l}", "-", "_"))}"],
    )])] : length(names) == length(distinct(names))])
    error_message = "Two pipelines would create a queue, topic, table or Glue table of the same name (<name>-<pipeline>-<thing>): rename a pipeline or the plan's sink."
  }

  validation {
    condition = alltrue([for k, p in var.pipelines :
      p.batch_size >= 1 && p.batch_size <= 10000 &&
      p.batching_window_seconds >= 0 && p.batching_window_seconds <= 300 && (p.batch_size <= 10 || p.batching_window_seconds >= 1)
    ])
    error_message = "batch_size must be 1-10000; batching_window_seconds 0-300, and at least 1 when batch_size is above 10."
  }

  validation {
    condition = alltrue([for k, p in var.pipelines :
      p.max_concurrency == null ? true : p.max_concurrency >= 2 && p.max_concurrency <= 1000 && (p.reserved_concurrency < 0 || p.max_concurrency <= p.reserved_concurrency)
    ])
    error_message = "max_concurrency must be null or 2-1000, and not above reserved_concurrency (-1 = unreserved)."
  }

  validation {
    condition = alltrue([for k, p in var.pipelines :
      p.memory_mb >= 128 && p.memory_mb <= 10240 && p.timeout_seconds >= 1 && p.timeout_seconds <= 900
    ])
    error_message = "memory_mb must be 128-10240 and timeout_seconds 1-900."
  }

  validation {
    condition = alltrue([for k, p in var.pipelines :
      p.queue_visibility_timeout_seconds == null ? true : p.queue_visibility_timeout_seconds >= 6 * p.timeout_seconds && p.queue_visibility_timeout_seconds <= 43200
    ])
    error_message = "queue_visibility_timeout_seconds must be null (6 x timeout_seconds) or at least 6 x timeout_seconds (AWS's guidance for SQS event sources) and at most 43200."
  }

  validation {
    condition     = alltrue([for k, p in var.pipelines : p.queue_max_receive_count >= 1 && p.queue_max_receive_count <= 1000 && p.refresh_seconds >= 0])
    error_message = "queue_max_receive_count must be 1-1000 and refresh_seconds 0 or more."
  }

  validation {
    condition     = alltrue(flatten([for k, p in var.pipelines : [for s in p.signing_keys : can(regex("^[A-Za-z0-9+/]{43}=$", s))]]))
    error_message = "signing_keys must be base64 ed25519 public keys (32 bytes: 43 characters and '=')."
  }
}

# ---------------------------------------------------------------------------
# Buckets (shared by every pipeline)
# ---------------------------------------------------------------------------

variable "plugins_bucket_name" {
  description = "Name of the plugins bucket (every pipeline's manifest, bindings and plugins); null = <name>-plugins-<account>-<region>."
  type        = string
  default     = null
}

variable "input_bucket_name" {
  description = "Name of the input bucket (each pipeline's S3 input is a prefix/suffix filter in it); null = <name>-input-<account>-<region>."
  type        = string
  default     = null
}

variable "create_output_bucket" {
  description = "Create the output bucket (true) or reuse the existing bucket named by output_bucket_name (false)."
  type        = bool
  default     = true
}

variable "output_bucket_name" {
  description = "Name of the output bucket (each pipeline writes under <pipeline>/, weir-dead-letters/<pipeline>/ and weir-checkpoints/<pipeline>/); null = <name>-output-<account>-<region>. Required when create_output_bucket is false."
  type        = string
  default     = null

  validation {
    condition     = var.create_output_bucket || var.output_bucket_name != null
    error_message = "output_bucket_name is required when create_output_bucket is false."
  }
}

variable "athena_results_prefix" {
  description = "Key prefix in the output bucket for Athena query results, without slashes; must not be a pipeline name."
  type        = string
  default     = "athena-results"

  validation {
    condition     = can(regex("^[A-Za-z0-9_.-]+$", var.athena_results_prefix)) && !contains(["weir-dead-letters", "weir-checkpoints"], var.athena_results_prefix)
    error_message = "athena_results_prefix must be one path segment, other than weir-dead-letters and weir-checkpoints."
  }
}

variable "force_destroy_buckets" {
  description = "Let terraform destroy non-empty buckets (and delete every object version). Keep false in production."
  type        = bool
  default     = false
}

variable "plugins_noncurrent_version_days" {
  description = "Days after which non-current versions of plugins, manifests and bindings are deleted (rollback window)."
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
# Queues
# ---------------------------------------------------------------------------

variable "queue_message_retention_seconds" {
  description = "Retention of every pipeline's input queue, in seconds."
  type        = number
  default     = 345600
}

variable "dlq_message_retention_seconds" {
  description = "Retention of every pipeline's input dead-letter queue and rejects queue, in seconds."
  type        = number
  default     = 1209600
}

# ---------------------------------------------------------------------------
# Tables
# ---------------------------------------------------------------------------

variable "ttl_attribute" {
  description = "Name of the TTL attribute (epoch seconds) on every table."
  type        = string
  default     = "expires_at"
}

variable "table_deletion_protection" {
  description = "Enable deletion protection on every table."
  type        = bool
  default     = true
}

# ---------------------------------------------------------------------------
# Topics
# ---------------------------------------------------------------------------

variable "alerts_email" {
  description = "E-mail address subscribed to the alerts topic; null for none."
  type        = string
  default     = null
}

variable "sns_kms_key_arn" {
  description = "Customer-managed KMS key ARN to encrypt every SNS topic; null leaves them unencrypted (the AWS-managed aws/sns key cannot be used by S3 or CloudWatch alarms). The key policy must allow cloudwatch.amazonaws.com and s3.amazonaws.com; each function's role is granted kms:GenerateDataKey and kms:Decrypt on it."
  type        = string
  default     = null
}

# ---------------------------------------------------------------------------
# Functions (settings shared by every pipeline's function)
# ---------------------------------------------------------------------------

variable "lambda_zip_path" {
  description = "Path of the cargo-lambda zip; null = target/lambda/bootstrap/bootstrap.zip under the repository root (cargo lambda build --release --arm64 --output-format zip -p weir-lambda)."
  type        = string
  default     = null
}

variable "lambda_architecture" {
  description = "Instruction set of the functions; must match the build (--arm64 builds arm64)."
  type        = string
  default     = "arm64"

  validation {
    condition     = contains(["arm64", "x86_64"], var.lambda_architecture)
    error_message = "lambda_architecture must be arm64 or x86_64."
  }
}

variable "log_retention_days" {
  description = "Retention of each function's log group, in days."
  type        = number
  default     = 30
}

variable "rust_log" {
  description = "RUST_LOG of the functions."
  type        = string
  default     = "info"
}

variable "cache_dir" {
  description = "Plugin cache directory inside the functions."
  type        = string
  default     = "/tmp/weir-cache"
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
  description = "Alarm when a pipeline's input DLQ holds more than this many messages."
  type        = number
  default     = 0
}

variable "rejects_depth_threshold" {
  description = "Alarm when a pipeline's rejects queue holds more than this many messages."
  type        = number
  default     = 100
}

variable "errors_threshold" {
  description = "Alarm when a function errors more than this many times in one period."
  type        = number
  default     = 0
}

variable "throttles_threshold" {
  description = "Alarm when a function is throttled more than this many times in one period."
  type        = number
  default     = 0
}

variable "oldest_message_age_threshold_seconds" {
  description = "Alarm when a pipeline's oldest input message is older than this, in seconds."
  type        = number
  default     = 900
}

variable "plugin_refusals_threshold" {
  description = "Alarm when a pipeline's plugins refuse more than this many records in one period."
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
  description = "Columns of the JSON lines (Hive types) in every Glue table; dt is the partition key."
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
