# The example env's outputs too (example_outputs.tf is a link to ../example/outputs.tf), so that
# the deploy guide's commands (docs/deploy.md, run by terraform/tests/deploy_guide.py) read the
# same outputs here as on a real account.
output "weir" {
  description = "Every output of the weir module, for the verification script."
  value       = module.weir
}

output "big_orders_eur_queue_url" {
  description = "URL of the queue subscribed to the orders pipeline's big-orders topic with the filter policy currency = EUR (raw delivery)."
  value       = aws_sqs_queue.big_orders_eur.id
}
