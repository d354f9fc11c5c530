# Log Analytics workspace shared by everything in the environment, the workspace-based
# Application Insights component the Functions host reports to, and the action group that
# receives every alert (main.alerts.tf).

resource "azurerm_log_analytics_workspace" "this" {
  name                = var.log_analytics_name
  location            = var.location
  resource_group_name = var.resource_group_name
  tags                = var.tags

  sku               = "PerGB2018"
  retention_in_days = var.retention_in_days
  daily_quota_gb    = var.daily_quota_gb
  # Ingestion and queries with Entra ID only; diagnostic settings and workspace-based
  # Application Insights do not need the shared keys.
  local_authentication_enabled = false
}

resource "azurerm_application_insights" "this" {
  name                = var.application_insights_name
  location            = var.location
  resource_group_name = var.resource_group_name
  tags                = var.tags

  workspace_id     = azurerm_log_analytics_workspace.this.id
  application_type = "other"
  # The instrumentation key in the connection string no longer authorises ingestion: the
  # host must present an Entra token (APPLICATIONINSIGHTS_AUTHENTICATION_STRING).
  local_authentication_enabled = false
}

# Lets the given identities send telemetry to this component and nothing else.
resource "azurerm_role_assignment" "metrics_publisher" {
  for_each = var.metrics_publisher_principal_ids

  scope                = azurerm_application_insights.this.id
  role_definition_name = "Monitoring Metrics Publisher"
  principal_id         = each.value
  principal_type       = "ServicePrincipal"
}

resource "azurerm_monitor_action_group" "this" {
  name                = var.action_group_name
  resource_group_name = var.resource_group_name
  short_name          = var.action_group_short_name
  tags                = var.tags

  dynamic "email_receiver" {
    for_each = toset(var.alert_email_addresses)
    content {
      name                    = "email-${index(var.alert_email_addresses, email_receiver.value)}"
      email_address           = email_receiver.value
      use_common_alert_schema = true
    }
  }
}
