variable "region" {
  description = "AWS region to deploy to."
  type        = string
  default     = "eu-west-1"
}

variable "alerts_email" {
  description = "E-mail address for alarms; null for none."
  type        = string
  default     = null
}

variable "signing_keys" {
  description = "Base64 ed25519 public keys trusted to sign plugins."
  type        = list(string)
  default     = []
}
