# Azure OpenAI account and the model deployment qotd generates quizzes with. Callers use Entra
# ID (Cognitive Services OpenAI User); key auth is off unless `local_auth_enabled`, in which
# case the key is written to Key Vault (write-only, so not kept in this module's state) and
# only the listed principals may read that one secret.

resource "azurerm_cognitive_account" "this" {
  #checkov:skip=CKV_AZURE_134:The Function App reaches Azure OpenAI over the public endpoint (no VNet integration in this baseline); only Entra ID callers with Cognitive Services OpenAI User get through, key auth is off by default.
  #checkov:skip=CKV2_AZURE_22:Prompts and completions are not stored by qotd; Microsoft-managed keys are enough for the account.
  #checkov:skip=CKV_AZURE_247:Outbound access is restricted with an empty allow-list (the account needs no outbound calls); checkov only passes a non-empty list.
  name                = var.name
  location            = var.location
  resource_group_name = var.resource_group_name
  tags                = var.tags

  kind     = "OpenAI"
  sku_name = var.sku_name
  # A custom subdomain is required for Entra ID authentication.
  custom_subdomain_name         = var.name
  local_auth_enabled            = var.local_auth_enabled
  public_network_access_enabled = var.public_network_access_enabled
  # Quiz generation needs no "on your data" sources, so the account may call nothing.
  outbound_network_access_restricted = true
  fqdns                              = []

  network_acls {
    default_action = var.network_default_action
    ip_rules       = var.allowed_ip_ranges
  }

  identity {
    type = "SystemAssigned"
  }
}

resource "azurerm_cognitive_deployment" "this" {
  name                 = var.deployment_name
  cognitive_account_id = azurerm_cognitive_account.this.id

  model {
    format  = "OpenAI"
    name    = var.model_name
    version = var.model_version
  }

  sku {
    name     = var.deployment_sku_name
    capacity = var.capacity
  }

  # Structured-output behaviour is tested against one model version: upgrade deliberately.
  version_upgrade_option = "NoAutoUpgrade"
}

resource "azurerm_role_assignment" "openai_user" {
  for_each = var.user_principal_ids

  scope                = azurerm_cognitive_account.this.id
  role_definition_name = "Cognitive Services OpenAI User"
  principal_id         = each.value
  principal_type       = "ServicePrincipal"
}

resource "azurerm_key_vault_secret" "api_key" {
  count = var.local_auth_enabled ? 1 : 0

  name             = var.api_key_secret_name
  key_vault_id     = var.key_vault_id
  content_type     = "text/plain; azure-openai-api-key"
  value_wo         = azurerm_cognitive_account.this.primary_access_key
  value_wo_version = var.api_key_secret_version
  expiration_date  = var.api_key_secret_expiration_date
}

resource "azurerm_role_assignment" "api_key_reader" {
  for_each = var.local_auth_enabled ? var.secret_reader_principal_ids : {}

  scope                = azurerm_key_vault_secret.api_key[0].resource_versionless_id
  role_definition_name = "Key Vault Secrets User"
  principal_id         = each.value
  principal_type       = "ServicePrincipal"
}

resource "azurerm_monitor_diagnostic_setting" "this" {
  name                       = "to-log-analytics"
  target_resource_id         = azurerm_cognitive_account.this.id
  log_analytics_workspace_id = var.log_analytics_workspace_id

  enabled_log {
    category_group = "allLogs"
  }

  enabled_metric {
    category = "AllMetrics"
  }
}
