variable "name" {
  description = "Name prefix of the queues and topics, e.g. weir (queues are <name>-<pipeline>-input, ...)."
  type        = string
}

variable "pipelines" {
  description = "Per pipeline: input queue settings, the name of its rejects queue, and its S3 input (null = none; via_sns = through an input-events topic)."
  type = map(object({
    visibility_timeout_seconds = number
    max_receive_count          = number
    rejects_queue_name         = string
    s3 = optional(object({
      via_sns = bool
    }))
  }))
}

variable "rules" {
  description = "The input bucket's notification rules (object-created events): each names its pipeline, a key prefix and suffix (empty = any), and whether it goes through the pipeline's input-events topic."
  type = list(object({
    id       = string
    pipeline = string
    prefix   = string
    suffix   = string
    via_sns  = bool
  }))
  default = []

  validation {
    condition     = alltrue([for r in var.rules : contains(keys(var.pipelines), r.pipeline)])
    error_message = "Every notification rule must name a pipeline of pipelines."
  }
}

variable "input_bucket_id" {
  description = "Name of the input bucket whose object-created events feed the pipelines."
  type        = string
}

variable "input_bucket_arn" {
  description = "ARN of the input bucket."
  type        = string
}

variable "account_id" {
  description = "AWS account ID that owns the bucket (aws:SourceAccount condition in resource policies)."
  type        = string
}

variable "message_retention_seconds" {
  description = "Retention of the input queues, in seconds."
  type        = number
}

variable "dlq_message_retention_seconds" {
  description = "Retention of the dead-letter and rejects queues, in seconds."
  type        = number
}

variable "sns_kms_key_arn" {
  description = "Customer-managed KMS key ARN for the input-events topics, or null for unencrypted topics."
  type        = string
  default     = null
}

variable "tags" {
  description = "Tags applied to every resource."
  type        = map(string)
  default     = {}
}
