variable "database_name" {
  description = "Glue catalog database name (lowercase letters, digits, underscores)."
  type        = string
}

variable "tables" {
  description = "Glue tables to create, keyed by table name: the pipeline and objects sink each covers and its S3 location (s3://<bucket>/<prefix>, ending in '/'), under which data lives in dt=YYYY-MM-DD/."
  type = map(object({
    pipeline = string
    sink     = string
    location = string
  }))

  validation {
    condition     = alltrue([for k, t in var.tables : can(regex("^s3://[^/]+/(.*/)?$", t.location)) && can(regex("^[a-z0-9_]{1,255}$", k))])
    error_message = "Table names are lowercase letters, digits and '_'; locations are s3://bucket/prefix/ (ending in '/')."
  }
}

variable "output_bucket_name" {
  description = "Bucket holding the processed output and the Athena results."
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
