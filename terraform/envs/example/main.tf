# weir in a real AWS account. Build the function first (from the repository root):
#   cargo lambda build --release --arm64 --output-format zip -p weir-lambda
# then: terraform init && terraform apply   (see docs/deploy.md)
#
# State: add a backend (e.g. an S3 backend with locking) before sharing this env.

provider "aws" {
  region = var.region

  default_tags {
    tags = { project = "weir", env = "example", pipeline = var.pipeline }
  }
}

module "weir" {
  source = "../.."

  name     = "weir"
  pipeline = var.pipeline

  # null = <repo>/target/lambda/bootstrap/bootstrap.zip, cargo-lambda's output.
  lambda_zip_path     = null
  lambda_architecture = "arm64"

  input_prefix = "incoming/"
  input_suffix = ".csv"

  alerts_email = var.alerts_email
  signing_keys = var.signing_keys
}
