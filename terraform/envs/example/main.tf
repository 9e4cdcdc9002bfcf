# weir in a real AWS account. Build the function first (from the repository root):
#   cargo lambda build --release --arm64 --output-format zip -p weir-lambda
# then: terraform init && terraform apply   (see docs/deploy.md)
#
# State: add a backend (e.g. an S3 backend with locking) before sharing this env.

provider "aws" {
  region = var.region

  default_tags {
    tags = { project = "weir", env = "example" }
  }
}

module "weir" {
  source = "../.."

  name = "weir"

  pipelines = {
    # The orders example: examples/orders/weir.toml; plan.json is `weir plan` of it.
    orders = {
      plan     = jsondecode(file("${path.module}/../../../examples/orders/plan.json"))
      s3_input = { prefix = "incoming/orders/", suffixes = [".csv"] }

      batch_size              = 100
      batching_window_seconds = 5
      signing_keys            = var.signing_keys
    }
  }

  # null = <repo>/target/lambda/bootstrap/bootstrap.zip, cargo-lambda's output.
  lambda_zip_path     = null
  lambda_architecture = "arm64"

  alerts_email = var.alerts_email
}
