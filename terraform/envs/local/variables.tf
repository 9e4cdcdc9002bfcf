variable "endpoint" {
  description = "URL of the local AWS emulator (moto server), e.g. http://127.0.0.1:5000."
  type        = string
  default     = "http://127.0.0.1:5000"

  validation {
    condition     = can(regex("^http://127\\.0\\.0\\.1:[0-9]+$", var.endpoint))
    error_message = "endpoint must be a loopback URL: http://127.0.0.1:<port>."
  }
}

variable "region" {
  description = "Region the emulator pretends to be."
  type        = string
  default     = "us-east-1"
}

variable "lambda_zip_path" {
  description = "Path of the function zip; the emulator stores it and never runs it, so a placeholder with a `bootstrap` file will do."
  type        = string
}

variable "signing_keys" {
  description = "Public keys (`weir keygen`) the orders and events functions require their plugins to be signed with; terraform/tests/run.sh generates a key per run and tests/deployed_flow.py signs with it. Empty = unsigned plugins load."
  type        = list(string)
  default     = []
}

variable "enable_athena_workgroup" {
  description = "Create the Athena workgroup in the emulator."
  type        = bool
  default     = true
}
