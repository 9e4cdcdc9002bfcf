variable "database_name" {
  description = "Glue catalog database name (lowercase letters, digits, underscores)."
  type        = string
}

variable "table_name" {
  description = "Glue catalog table name over the processed output."
  type        = string
}

variable "output_bucket_name" {
  description = "Bucket holding the processed output."
  type        = string
}

variable "output_prefix" {
  description = "Key prefix of the processed output, without leading or trailing slash; data lives under <prefix>/dt=YYYY-MM-DD/."
  type        = string
}

variable "columns" {
  description = "Columns of the JSON lines records (Hive types)."
  type = list(object({
    name    = string
    type    = string
    comment = optional(string)
  }))
}

variable "partition_start_date" {
  description = "First dt (YYYY-MM-DD) partition projection covers."
  type        = string
}

variable "enable_athena_workgroup" {
  description = "Create the Athena workgroup."
  type        = bool
  default     = true
}

variable "workgroup_name" {
  description = "Athena workgroup name."
  type        = string
}

variable "athena_results_prefix" {
  description = "Key prefix in the output bucket for Athena query results, without slashes."
  type        = string
}

variable "force_destroy" {
  description = "Let terraform destroy the workgroup even if it holds named queries."
  type        = bool
  default     = false
}

variable "tags" {
  description = "Tags applied to every resource."
  type        = map(string)
  default     = {}
}
