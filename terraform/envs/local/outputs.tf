output "weir" {
  description = "Every output of the weir module, for the verification script."
  value       = module.weir
}
