# Key Vault for the environment's secrets: Azure RBAC (no access policies), purge protection,
# soft delete. Readers are granted per secret by the module that writes the secret, so each
# identity sees only what it uses.

resource "azurerm_key_vault" "this" {
  #checkov:skip=CKV_AZURE_109:Default action Allow because Flex Consumption without VNet integration resolves Key Vault references over the public endpoint; access is Azure RBAC per secret. Set network_default_action = "Deny" with private networking.
  #checkov:skip=CKV_AZURE_189:Same reason as CKV_AZURE_109: no private networking in this baseline.
  #checkov:skip=CKV2_AZURE_32:Private endpoints need the VNet integration this baseline does not deploy (see docs/deploy.md, hardening).
  name                = var.name
  location            = var.location
  resource_group_name = var.resource_group_name
  tags                = var.tags

  tenant_id                     = var.tenant_id
  sku_name                      = var.sku_name
  rbac_authorization_enabled    = true
  purge_protection_enabled      = true
  soft_delete_retention_days    = var.soft_delete_retention_days
  public_network_access_enabled = var.public_network_access_enabled

  network_acls {
    bypass         = "AzureServices"
    default_action = var.network_default_action
    ip_rules       = var.allowed_ip_ranges
  }
}

resource "azurerm_role_assignment" "secrets_officer" {
  for_each = var.secrets_officer_principal_ids

  scope                = azurerm_key_vault.this.id
  role_definition_name = "Key Vault Secrets Officer"
  principal_id         = each.value
}

resource "azurerm_monitor_diagnostic_setting" "this" {
  name                       = "to-log-analytics"
  target_resource_id         = azurerm_key_vault.this.id
  log_analytics_workspace_id = var.log_analytics_workspace_id

  enabled_log {
    category_group = "audit"
  }

  enabled_metric {
    category = "AllMetrics"
  }
}
