variable "name" {
  description = "Name prefix of the alerts topic, e.g. weir."
  type        = string
}

variable "account_id" {
  description = "AWS account ID (aws:SourceAccount condition in topic policies)."
  type        = string
}

variable "topics" {
  description = "The pipelines' topics, keyed by topic name (<name>-<pipeline>-<topic>, ending in .fifo when fifo is true)."
  type = map(object({
    fifo = bool
  }))
  default = {}

  validation {
    condition     = alltrue([for k, t in var.topics : t.fifo == endswith(k, ".fifo")])
    error_message = "A FIFO topic's name must end in .fifo, and only a FIFO topic's."
  }
}

variable "alerts_email" {
  description = "E-mail address subscribed to the alerts topic, or null for none (the address must confirm the subscription)."
  type        = string
  default     = null
}

variable "sns_kms_key_arn" {
  description = "Customer-managed KMS key ARN for every topic, or null for unencrypted topics. Its key policy must let cloudwatch.amazonaws.com use it."
  type        = string
  default     = null
}

variable "tags" {
  description = "Tags applied to every resource."
  type        = map(string)
  default     = {}
}
