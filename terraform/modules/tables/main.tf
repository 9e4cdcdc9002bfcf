# Where the pipelines' table sinks land: one DynamoDB table per table of every plan.
# On-demand, PITR, server-side encryption, TTL; key attributes are strings (S).

resource "aws_dynamodb_table" "this" {
  for_each = var.tables

  name                        = each.key
  billing_mode                = "PAY_PER_REQUEST"
  hash_key                    = each.value.hash_key
  range_key                   = each.value.range_key
  deletion_protection_enabled = var.deletion_protection

  attribute {
    name = each.value.hash_key
    type = "S"
  }

  dynamic "attribute" {
    for_each = each.value.range_key == null ? [] : [each.value.range_key]
    content {
      name = attribute.value
      type = "S"
    }
  }

  point_in_time_recovery {
    enabled = true
  }

  # AWS-managed key (aws/dynamodb): encryption at rest without a customer key policy.
  server_side_encryption {
    enabled = true
  }

  ttl {
    enabled        = true
    attribute_name = var.ttl_attribute
  }

  tags = var.tags
}
