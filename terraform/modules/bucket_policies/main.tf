# Guardrail, not a grant: every weir bucket denies any request that is not over TLS. A
# Deny on s3:* is the documented way to express this; Allow statements elsewhere name
# exact actions.
#
# A module of its own so that the root module can attach these policies after the
# objects terraform itself writes (the bindings documents) and remove them before those
# objects: terraform talks TLS to AWS, but the emulator of tests/run.sh (moto) does not
# evaluate the condition and denies every object request while such a policy is on.

data "aws_partition" "current" {}

resource "aws_s3_bucket_policy" "tls_only" {
  for_each = var.buckets

  bucket = each.value
  policy = jsonencode({
    Version = "2012-10-17"
    Statement = [{
      Sid       = "DenyInsecureTransport"
      Effect    = "Deny"
      Principal = "*"
      Action    = "s3:*"
      Resource  = ["arn:${data.aws_partition.current.partition}:s3:::${each.value}", "arn:${data.aws_partition.current.partition}:s3:::${each.value}/*"]
      Condition = { Bool = { "aws:SecureTransport" = "false" } }
    }]
  })
}
