output "function_name" {
  description = "Name of the function."
  value       = aws_lambda_function.this.function_name
}

output "function_arn" {
  description = "ARN of the function."
  value       = aws_lambda_function.this.arn
}

output "role_arn" {
  description = "ARN of the function's role."
  value       = aws_iam_role.this.arn
}

output "log_group_name" {
  description = "Name of the function's log group."
  value       = aws_cloudwatch_log_group.this.name
}

output "environment" {
  description = "Environment of the function (names and values)."
  value       = aws_lambda_function.this.environment[0].variables
}

output "policy_statements" {
  description = "Statements of the role's only policy."
  value       = local.policy_statements
}

output "bindings_key" {
  description = "Key of the bindings document in the plugins bucket."
  value       = aws_s3_object.bindings.key
}

output "bindings" {
  description = "The bindings document as written (decoded)."
  value       = jsondecode(aws_s3_object.bindings.content)
}

output "event_source_mapping_uuid" {
  description = "UUID of the SQS event source mapping."
  value       = aws_lambda_event_source_mapping.input.uuid
}

output "event_source_mapping" {
  description = "Settings of the SQS event source mapping."
  value = {
    function_response_types            = aws_lambda_event_source_mapping.input.function_response_types
    batch_size                         = aws_lambda_event_source_mapping.input.batch_size
    maximum_batching_window_in_seconds = aws_lambda_event_source_mapping.input.maximum_batching_window_in_seconds
    event_source_arn                   = aws_lambda_event_source_mapping.input.event_source_arn
  }
}
