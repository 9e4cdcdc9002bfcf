variable "name" {
  description = "Name prefix for the tables, e.g. weir-main."
  type        = string
}

variable "results_keys" {
  description = "Key schema of the results table: hash key and optional range key, each with a DynamoDB scalar type (S, N or B)."
  type = object({
    hash_key       = string
    hash_key_type  = optional(string, "S")
    range_key      = optional(string)
    range_key_type = optional(string, "S")
  })
}

variable "aggregates_keys" {
  description = "Key schema of the aggregates table: hash key and optional range key, each with a DynamoDB scalar type (S, N or B)."
  type = object({
    hash_key       = string
    hash_key_type  = optional(string, "S")
    range_key      = optional(string)
    range_key_type = optional(string, "S")
  })
}

variable "ttl_attribute" {
  description = "Name of the numeric epoch-seconds attribute DynamoDB uses to expire items."
  type        = string
}

variable "deletion_protection" {
  description = "Enable DynamoDB deletion protection on both tables."
  type        = bool
  default     = true
}

variable "tags" {
  description = "Tags applied to every resource."
  type        = map(string)
  default     = {}
}
