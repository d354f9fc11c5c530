output "resource_id" {
  description = "Account resource id."
  value       = azurerm_cognitive_account.this.id
}

output "name" {
  description = "Account name."
  value       = azurerm_cognitive_account.this.name
}

output "endpoint" {
  description = "Account endpoint, https://<name>.openai.azure.com/ (QOTD_OPENAI_ENDPOINT)."
  value       = azurerm_cognitive_account.this.endpoint
}

output "deployment_name" {
  description = "Model deployment name (QOTD_OPENAI_DEPLOYMENT)."
  value       = azurerm_cognitive_deployment.this.name
}

output "api_key_secret" {
  description = "{ uri = versionless secret URI, resource_id = versionless secret resource id } of the API key, or null when local auth is off."
  value = var.local_auth_enabled ? {
    uri         = azurerm_key_vault_secret.api_key[0].versionless_id
    resource_id = azurerm_key_vault_secret.api_key[0].resource_versionless_id
  } : null
  depends_on = [azurerm_role_assignment.api_key_reader]
}
