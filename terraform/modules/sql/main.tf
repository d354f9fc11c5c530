# Azure SQL logical server with Entra-only authentication (no SQL login or password exists,
# so none is in state) and the qotd database. Database users for the managed identities are
# created by scripts/sql-grant-identities.sh, run by the Entra admin: ARM cannot do it.

locals {
  serverless = startswith(var.sku_name, "GP_S_")
}

resource "azurerm_mssql_server" "this" {
  #checkov:skip=CKV_AZURE_113:No private networking in this baseline: the public endpoint is filtered by the firewall (Azure services only by default) and accepts Entra ID logins only.
  #checkov:skip=CKV2_AZURE_45:Private endpoints need the VNet integration this baseline does not deploy (see docs/deploy.md, hardening).
  #checkov:skip=CKV2_AZURE_2:Vulnerability assessment is part of Microsoft Defender for SQL, enabled per subscription by the platform team; the classic storage-account setup would need shared keys.
  #checkov:skip=CKV_AZURE_24:Audit events go to Log Analytics, whose retention (log_retention_days) governs them; the policy's own retention applies only to a storage-account target.
  name                = var.server_name
  location            = var.location
  resource_group_name = var.resource_group_name
  tags                = var.tags

  version                       = "12.0"
  minimum_tls_version           = "1.2"
  public_network_access_enabled = var.public_network_access_enabled
  connection_policy             = "Default"

  azuread_administrator {
    login_username              = var.entra_admin_login
    object_id                   = var.entra_admin_object_id
    tenant_id                   = var.entra_admin_tenant_id
    azuread_authentication_only = true
  }
}

resource "azurerm_mssql_database" "this" {
  #checkov:skip=CKV_AZURE_224:Ledger makes every table append-only history and cannot be turned off; quiz data needs no cryptographic non-repudiation.
  name      = var.database_name
  server_id = azurerm_mssql_server.this.id
  tags      = var.tags

  sku_name                    = var.sku_name
  max_size_gb                 = var.max_size_gb
  zone_redundant              = var.zone_redundant
  storage_account_type        = var.backup_storage_redundancy
  auto_pause_delay_in_minutes = local.serverless ? var.auto_pause_delay_in_minutes : null
  min_capacity                = local.serverless ? var.min_capacity : null
  collation                   = "SQL_Latin1_General_CP1_CI_AS"

  short_term_retention_policy {
    retention_days = var.short_term_retention_days
  }
}

# The 0.0.0.0 rule is Azure's "allow Azure services" switch, not an open range: Flex
# Consumption and Container Apps (without VNet integration) have no fixed egress addresses.
resource "azurerm_mssql_firewall_rule" "azure_services" {
  #checkov:skip=CKV2_AZURE_34:0.0.0.0-0.0.0.0 is Azure's "allow Azure services" rule, not an open range; needed because Flex Consumption and Container Apps have no fixed egress IPs without VNet integration (sql_allow_azure_services = false turns it off).
  count = var.allow_azure_services ? 1 : 0

  name             = "AllowAllWindowsAzureIps"
  server_id        = azurerm_mssql_server.this.id
  start_ip_address = "0.0.0.0"
  end_ip_address   = "0.0.0.0"
}

resource "azurerm_mssql_firewall_rule" "allowed" {
  for_each = var.allowed_ip_ranges

  name             = each.key
  server_id        = azurerm_mssql_server.this.id
  start_ip_address = each.value.start_ip_address
  end_ip_address   = each.value.end_ip_address
}

# Server auditing to Log Analytics (SQLSecurityAuditEvents, through the master database's
# diagnostic setting below).
resource "azurerm_mssql_server_extended_auditing_policy" "this" {
  server_id              = azurerm_mssql_server.this.id
  log_monitoring_enabled = true
}

resource "azurerm_monitor_diagnostic_setting" "audit" {
  name                       = "audit-to-log-analytics"
  target_resource_id         = "${azurerm_mssql_server.this.id}/databases/master"
  log_analytics_workspace_id = var.log_analytics_workspace_id

  enabled_log {
    category = "SQLSecurityAuditEvents"
  }

  depends_on = [azurerm_mssql_server_extended_auditing_policy.this]
}

resource "azurerm_monitor_diagnostic_setting" "database" {
  name                       = "to-log-analytics"
  target_resource_id         = azurerm_mssql_database.this.id
  log_analytics_workspace_id = var.log_analytics_workspace_id

  enabled_log {
    category_group = "allLogs"
  }

  enabled_metric {
    category = "Basic"
  }
}
