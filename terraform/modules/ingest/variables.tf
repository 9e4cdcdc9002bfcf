variable "name" {
  description = "Name prefix for the queues and topic, e.g. weir-main."
  type        = string
}

variable "input_bucket_id" {
  description = "Name of the input bucket whose object-created events feed the pipeline."
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

variable "filter_prefix" {
  description = "Only objects whose key starts with this prefix raise events (empty = all keys)."
  type        = string
}

variable "filter_suffix" {
  description = "Only objects whose key ends with this suffix raise events (empty = all keys)."
  type        = string
}

variable "enable_input_events_topic" {
  description = "Send the bucket's object-created events to an SNS topic that fans out to the input queue (raw delivery) and to any other subscriber, instead of straight to the queue."
  type        = bool
  default     = false
}

variable "visibility_timeout_seconds" {
  description = "Visibility timeout of the input queue, in seconds (at least six times the function timeout)."
  type        = number
}

variable "max_receive_count" {
  description = "Receives of one message before SQS moves it to the input dead-letter queue."
  type        = number
}

variable "message_retention_seconds" {
  description = "Retention of the input queue, in seconds."
  type        = number
}

variable "dlq_message_retention_seconds" {
  description = "Retention of the dead-letter queues, in seconds."
  type        = number
}

variable "sns_kms_key_arn" {
  description = "Customer-managed KMS key ARN for the input events topic, or null for an unencrypted topic."
  type        = string
  default     = null
}

variable "tags" {
  description = "Tags applied to every resource."
  type        = map(string)
  default     = {}
}
