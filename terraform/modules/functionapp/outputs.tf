# Exactly one of the two hosting resources exists; one() picks it.

output "name" {
  description = "Function App name (Flex) or container app name (Container Apps)."
  value       = one(concat(azurerm_function_app_flex_consumption.this[*].name, azurerm_container_app.functions[*].name))
}

output "resource_id" {
  description = "Resource id of the Function App or container app."
  value       = one(concat(azurerm_function_app_flex_consumption.this[*].id, azurerm_container_app.functions[*].id))
}

output "default_hostname" {
  description = "Public host name of the API."
  value       = one(concat(azurerm_function_app_flex_consumption.this[*].default_hostname, [for app in azurerm_container_app.functions : app.ingress[0].fqdn]))
}

output "url" {
  description = "https base URL of the API (routes are <url>/api/...)."
  value       = "https://${one(concat(azurerm_function_app_flex_consumption.this[*].default_hostname, [for app in azurerm_container_app.functions : app.ingress[0].fqdn]))}"
}

output "storage_account_name" {
  description = "Host storage account name."
  value       = azurerm_storage_account.host.name
}

output "hosting" {
  description = "The hosting option in use."
  value       = var.hosting
}
