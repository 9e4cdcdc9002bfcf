# Where results land: one item per processed record (results) and counters the
# pipeline adds to (aggregates). On-demand, PITR, server-side encryption, TTL.

locals {
  tables = {
    results    = var.results_keys
    aggregates = var.aggregates_keys
  }
}

resource "aws_dynamodb_table" "this" {
  for_each = local.tables

  name                        = "${var.name}-${each.key}"
  billing_mode                = "PAY_PER_REQUEST"
  hash_key                    = each.value.hash_key
  range_key                   = each.value.range_key
  deletion_protection_enabled = var.deletion_protection

  attribute {
    name = each.value.hash_key
    type = each.value.hash_key_type
  }

  dynamic "attribute" {
    for_each = each.value.range_key == null ? [] : [each.value.range_key]
    content {
      name = attribute.value
      type = each.value.range_key_type
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
