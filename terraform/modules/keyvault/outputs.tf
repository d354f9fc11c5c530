output "resource_id" {
  description = "Vault resource id."
  value       = azurerm_key_vault.this.id
  # Secrets written right after apply need the officer role to exist first.
  depends_on = [azurerm_role_assignment.secrets_officer]
}

output "name" {
  description = "Vault name."
  value       = azurerm_key_vault.this.name
}

output "vault_uri" {
  description = "Vault URI, https://<name>.vault.azure.net/."
  value       = azurerm_key_vault.this.vault_uri
}
