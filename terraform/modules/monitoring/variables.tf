variable "name" {
  description = "Name prefix of the alarms (<name>-<pipeline>-<what>) and the dashboard's name, e.g. weir."
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

variable "pipelines" {
  description = "Per pipeline (its name is the Pipeline dimension of Weir/PluginRefusals): its function and the names of its input queue, input DLQ and rejects queue."
  type = map(object({
    function_name      = string
    input_queue_name   = string
    input_dlq_name     = string
    rejects_queue_name = string
  }))
}

variable "period_seconds" {
  description = "Period of every alarm, in seconds."
  type        = number
  default     = 300
}

variable "dlq_depth_threshold" {
  description = "Alarm when a pipeline's input DLQ holds more than this many visible messages."
  type        = number
  default     = 0
}

variable "rejects_depth_threshold" {
  description = "Alarm when a pipeline's rejects queue holds more than this many visible messages."
  type        = number
  default     = 100
}

variable "errors_threshold" {
  description = "Alarm when a function reports more than this many errors in one period."
  type        = number
  default     = 0
}

variable "throttles_threshold" {
  description = "Alarm when a function is throttled more than this many times in one period."
  type        = number
  default     = 0
}

variable "oldest_message_age_threshold_seconds" {
  description = "Alarm when the oldest message in a pipeline's input queue is older than this, in seconds."
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
