variable "name" {
  description = "Name prefix for alarms and the dashboard, e.g. weir-main."
  type        = string
}

variable "pipeline" {
  description = "Pipeline name: the Pipeline dimension of Weir/PluginRefusals."
  type        = string
}

variable "region" {
  description = "Region shown by the dashboard widgets."
  type        = string
}

variable "alerts_topic_arn" {
  description = "SNS topic every alarm notifies (alarm and OK)."
  type        = string
}

variable "function_name" {
  description = "Name of the weir function."
  type        = string
}

variable "input_queue_name" {
  description = "Name of the input queue."
  type        = string
}

variable "input_dlq_name" {
  description = "Name of the input dead-letter queue."
  type        = string
}

variable "rejects_queue_name" {
  description = "Name of the queue for records rejected by plugins."
  type        = string
}

variable "period_seconds" {
  description = "Period of every alarm, in seconds."
  type        = number
  default     = 300
}

variable "dlq_depth_threshold" {
  description = "Alarm when the input DLQ holds more than this many visible messages."
  type        = number
  default     = 0
}

variable "rejects_depth_threshold" {
  description = "Alarm when the rejects queue holds more than this many visible messages."
  type        = number
  default     = 100
}

variable "errors_threshold" {
  description = "Alarm when the function reports more than this many errors in one period."
  type        = number
  default     = 0
}

variable "throttles_threshold" {
  description = "Alarm when the function is throttled more than this many times in one period."
  type        = number
  default     = 0
}

variable "oldest_message_age_threshold_seconds" {
  description = "Alarm when the oldest message in the input queue is older than this, in seconds."
  type        = number
  default     = 900
}

variable "plugin_refusals_threshold" {
  description = "Alarm when plugins refuse more than this many records in one period (Weir/PluginRefusals)."
  type        = number
  default     = 0
}

variable "tags" {
  description = "Tags applied to every resource."
  type        = map(string)
  default     = {}
}
