variable "name" {
  description = "Name prefix for the topics and the example subscriber queue, e.g. weir-main."
  type        = string
}

variable "account_id" {
  description = "AWS account ID (aws:SourceAccount condition in topic policies)."
  type        = string
}

variable "create_example_subscription" {
  description = "Create an SQS queue subscribed to the notifications topic through a filter policy, as an example consumer."
  type        = bool
  default     = true
}

variable "example_filter_policy" {
  description = "SNS filter policy (on message attributes) of the example subscription."
  type        = map(list(string))
}

variable "alerts_email" {
  description = "E-mail address subscribed to the alerts topic, or null for none (the address must confirm the subscription)."
  type        = string
  default     = null
}

variable "sns_kms_key_arn" {
  description = "Customer-managed KMS key ARN for both topics, or null for unencrypted topics. Its key policy must let cloudwatch.amazonaws.com use it."
  type        = string
  default     = null
}

variable "tags" {
  description = "Tags applied to every resource."
  type        = map(string)
  default     = {}
}
