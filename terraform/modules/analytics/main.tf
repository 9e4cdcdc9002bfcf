# Makes the pipelines' objects sinks queryable: one Glue database, a Glue table per
# sink over s3://<bucket>/<pipeline>/<prefix>, partitioned by dt with partition
# projection (no crawler, no MSCK REPAIR), and an Athena workgroup that writes its
# results to the output bucket.

resource "aws_glue_catalog_database" "this" {
  name        = var.database_name
  description = "weir processed output"
}

resource "aws_glue_catalog_table" "records" {
  for_each = var.tables

  database_name = aws_glue_catalog_database.this.name
  name          = each.key
  description   = "JSON lines written by weir pipeline ${each.value.pipeline} (objects sink ${each.value.sink}), one record per line"
  table_type    = "EXTERNAL_TABLE"

  parameters = {
    EXTERNAL                      = "TRUE"
    classification                = "json"
    "projection.enabled"          = "true"
    "projection.dt.type"          = "date"
    "projection.dt.format"        = "yyyy-MM-dd"
    "projection.dt.range"         = "${var.partition_start_date},NOW"
    "projection.dt.interval"      = "1"
    "projection.dt.interval.unit" = "DAYS"
    "storage.location.template"   = "${each.value.location}dt=$${dt}/"
  }

  partition_keys {
    name = "dt"
    type = "string"
  }

  storage_descriptor {
    location      = each.value.location
    input_format  = "org.apache.hadoop.mapred.TextInputFormat"
    output_format = "org.apache.hadoop.hive.ql.io.HiveIgnoreKeyTextOutputFormat"

    ser_de_info {
      name                  = "json"
      serialization_library = "org.openx.data.jsonserde.JsonSerDe"
      parameters = {
        "ignore.malformed.json" = "true"
      }
    }

    dynamic "columns" {
      for_each = var.columns
      content {
        name    = columns.value.name
        type    = columns.value.type
        comment = columns.value.comment
      }
    }
  }
}

resource "aws_athena_workgroup" "this" {
  count = var.enable_athena_workgroup ? 1 : 0

  name          = var.workgroup_name
  force_destroy = var.force_destroy

  configuration {
    enforce_workgroup_configuration    = true
    publish_cloudwatch_metrics_enabled = true

    result_configuration {
      output_location = "s3://${var.output_bucket_name}/${var.athena_results_prefix}/"
      encryption_configuration {
        encryption_option = "SSE_S3"
      }
    }
  }

  tags = var.tags
}
