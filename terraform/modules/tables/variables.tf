variable "tables" {
  description = "Tables to create, keyed by table name (<name>-<pipeline>-<table>): hash key and optional range key, both string (S) attributes."
  type = map(object({
    hash_key  = string
    range_key = optional(string)
  }))
}

variable "ttl_attribute" {
  description = "Name of the numeric epoch-seconds attribute DynamoDB uses to expire items."
  type        = string
}

variable "deletion_protection" {
  description = "Enable DynamoDB deletion protection on every table."
  type        = bool
  default     = true
}

variable "tags" {
  description = "Tags applied to every resource."
  type        = map(string)
  default     = {}
}
