# The Functions host running the qotd custom handler, in one of two places:
#
# - hosting = "flex_consumption": a Flex Consumption Function App with runtime `custom`,
#   deployed as a zip (scripts/package.sh) from a blob container, host storage by identity.
# - hosting = "container_apps": the Functions container image (Dockerfile) as a container app
#   in the baseline Container Apps environment, scaled by KEDA on HTTP concurrency and on each
#   Service Bus subscription's backlog.
#
# Both get the same application settings (var.app_settings) and run as the same user-assigned
# identity; this module adds only the host's own plumbing (storage, runtime, telemetry auth).

locals {
  flex      = var.hosting == "flex_consumption"
  container = var.hosting == "container_apps"

  # Host storage (timer locks, host keys, Flex deployment package) through the identity.
  host_storage_settings = {
    AzureWebJobsStorage__accountName = azurerm_storage_account.host.name
    AzureWebJobsStorage__credential  = "managedidentity"
    AzureWebJobsStorage__clientId    = var.identity.client_id
  }

  # Application Insights with local auth off: the host authenticates with the identity.
  telemetry_auth_settings = {
    APPLICATIONINSIGHTS_AUTHENTICATION_STRING = "ClientId=${var.identity.client_id};Authorization=AAD"
  }

  plain_app_settings = {
    for name, value in var.app_settings : name => value
    if !contains(keys(var.key_vault_secret_settings), name)
  }

  flex_app_settings = merge(
    local.plain_app_settings,
    { for name, secret in var.key_vault_secret_settings : name => "@Microsoft.KeyVault(SecretUri=${secret.uri})" },
    local.host_storage_settings,
    local.telemetry_auth_settings,
    {
      # azurerm (4.x) writes an AzureWebJobsStorage connection string with an empty key even
      # when storage_authentication_type is an identity, and the host would try to use it.
      # An empty value makes the host use the AzureWebJobsStorage__* identity settings.
      # Upstream: hashicorp/terraform-provider-azurerm#29149 and #29693.
      AzureWebJobsStorage = ""
    },
  )

  # Key Vault references resolve with the system-assigned identity (the Flex resource in
  # azurerm 4.x cannot select a user-assigned one), so it exists only when needed.
  flex_needs_system_identity = length(var.key_vault_secret_settings) > 0

  container_env = merge(
    local.plain_app_settings,
    local.host_storage_settings,
    local.telemetry_auth_settings,
    {
      FUNCTIONS_WORKER_RUNTIME = "custom"
      AzureWebJobsScriptRoot   = "/home/site/wwwroot"
      ASPNETCORE_URLS          = "http://+:${var.container_port}"
    },
  )
  container_app_name = coalesce(var.container_app_name, substr(var.name, 0, 32))
  container_secret_names = {
    for name in keys(var.key_vault_secret_settings) : name => lower(replace(name, "_", "-"))
  }
}

# ------------------------------------------------------------------------------------------
# Host storage (both hostings)
# ------------------------------------------------------------------------------------------

resource "azurerm_storage_account" "host" {
  #checkov:skip=CKV_AZURE_59:Flex Consumption (and Container Apps) without VNet integration reach host storage over the public endpoint; shared keys, SAS and anonymous access are off, so only Entra-authorised identities get in.
  #checkov:skip=CKV2_AZURE_33:Private endpoints need the VNet integration this baseline does not deploy (see docs/deploy.md, hardening).
  #checkov:skip=CKV2_AZURE_1:Host storage holds only rebuildable host state (locks, keys, the deployment zip); Microsoft-managed keys plus infrastructure encryption are enough.
  #checkov:skip=CKV_AZURE_206:Zone-redundant (ZRS) on purpose: the account holds only rebuildable host state and the deployment zip; geo replication adds cost without a second region to fail over to.
  #checkov:skip=CKV_AZURE_33:The Functions host uses no queues here; classic Storage Analytics logging needs the disabled shared-key path. Blob logs go to Log Analytics through a diagnostic setting.
  name                = var.storage_account_name
  location            = var.location
  resource_group_name = var.resource_group_name
  tags                = var.tags

  account_kind             = "StorageV2"
  account_tier             = "Standard"
  account_replication_type = "ZRS"
  min_tls_version          = "TLS1_2"

  # Identity only: no account keys, no SAS, no anonymous blobs.
  shared_access_key_enabled         = false
  default_to_oauth_authentication   = true
  allow_nested_items_to_be_public   = false
  local_user_enabled                = false
  cross_tenant_replication_enabled  = false
  infrastructure_encryption_enabled = true
  public_network_access_enabled     = true

  blob_properties {
    delete_retention_policy {
      days = 7
    }
    container_delete_retention_policy {
      days = 7
    }
  }

  sas_policy {
    expiration_period = "00.01:00:00"
    expiration_action = "Log"
  }
}

resource "azurerm_storage_container" "deployments" {
  #checkov:skip=CKV2_AZURE_21:Storage Insights (azurerm_log_analytics_storage_insights) needs the account key, which is disabled; blob read/write/delete logs go to Log Analytics through the blob service diagnostic setting instead.
  name                  = "deployments"
  storage_account_id    = azurerm_storage_account.host.id
  container_access_type = "private"
}

# Host storage is where the Functions host keeps its locks and keys: Blob Data Owner on this
# one account (the narrowest scope the host's container creation works with).
resource "azurerm_role_assignment" "host_storage" {
  scope                = azurerm_storage_account.host.id
  role_definition_name = "Storage Blob Data Owner"
  principal_id         = var.identity.principal_id
  principal_type       = "ServicePrincipal"
}

# ------------------------------------------------------------------------------------------
# Flex Consumption
# ------------------------------------------------------------------------------------------

resource "azurerm_service_plan" "flex" {
  #checkov:skip=CKV_AZURE_212:Flex Consumption has no worker count; warm capacity is the always-ready setting (flex_always_ready), sized per environment.
  #checkov:skip=CKV_AZURE_225:Zone redundancy for Flex Consumption is a regional opt-in not enabled in this baseline; the plan holds no state and instances are recreated on demand.
  count = local.flex ? 1 : 0

  name                = var.service_plan_name
  location            = var.location
  resource_group_name = var.resource_group_name
  tags                = var.tags

  os_type  = "Linux"
  sku_name = "FC1"
}

resource "azurerm_function_app_flex_consumption" "this" {
  count = local.flex ? 1 : 0

  name                = var.name
  location            = var.location
  resource_group_name = var.resource_group_name
  tags                = var.tags
  service_plan_id     = azurerm_service_plan.flex[0].id

  runtime_name    = "custom"
  runtime_version = var.flex_runtime_version

  storage_container_type            = "blobContainer"
  storage_container_endpoint        = "${azurerm_storage_account.host.primary_blob_endpoint}${azurerm_storage_container.deployments.name}"
  storage_authentication_type       = "UserAssignedIdentity"
  storage_user_assigned_identity_id = var.identity.id

  instance_memory_in_mb  = var.flex_instance_memory_in_mb
  maximum_instance_count = var.flex_maximum_instance_count
  http_concurrency       = var.flex_http_concurrency

  dynamic "always_ready" {
    for_each = var.flex_always_ready
    content {
      name           = always_ready.key
      instance_count = always_ready.value
    }
  }

  https_only                                     = true
  public_network_access_enabled                  = true
  webdeploy_publish_basic_authentication_enabled = var.basic_publishing_auth_enabled

  identity {
    type         = local.flex_needs_system_identity ? "SystemAssigned, UserAssigned" : "UserAssigned"
    identity_ids = [var.identity.id]
  }

  app_settings = local.flex_app_settings

  site_config {
    application_insights_connection_string = var.application_insights_connection_string
    minimum_tls_version                    = "1.2"
    scm_minimum_tls_version                = "1.2"
    http2_enabled                          = true

    dynamic "cors" {
      for_each = length(var.cors_allowed_origins) > 0 ? [var.cors_allowed_origins] : []
      content {
        allowed_origins = cors.value
      }
    }
  }

  lifecycle {
    ignore_changes = [
      # Tags the platform adds on zip deployment.
      tags["hidden-link: /app-insights-resource-id"],
    ]
  }

  depends_on = [azurerm_role_assignment.host_storage]
}

# Lets the Flex app's system identity resolve its Key Vault references (one secret each).
resource "azurerm_role_assignment" "flex_key_vault_reference" {
  for_each = local.flex ? var.key_vault_secret_settings : {}

  scope                = each.value.resource_id
  role_definition_name = "Key Vault Secrets User"
  principal_id         = azurerm_function_app_flex_consumption.this[0].identity[0].principal_id
  principal_type       = "ServicePrincipal"
}

# ------------------------------------------------------------------------------------------
# Functions container on Container Apps
# ------------------------------------------------------------------------------------------

resource "azurerm_container_app" "functions" {
  count = local.container ? 1 : 0

  name                         = local.container_app_name
  resource_group_name          = var.resource_group_name
  tags                         = var.tags
  container_app_environment_id = var.container_app_environment_id
  revision_mode                = "Single"
  workload_profile_name        = "Consumption"

  identity {
    type         = "UserAssigned"
    identity_ids = [var.identity.id]
  }

  registry {
    server   = var.container_registry_server
    identity = var.identity.id
  }

  dynamic "secret" {
    for_each = var.key_vault_secret_settings
    content {
      name                = local.container_secret_names[secret.key]
      key_vault_secret_id = secret.value.uri
      identity            = var.identity.id
    }
  }

  ingress {
    external_enabled           = true
    target_port                = var.container_port
    transport                  = "auto"
    allow_insecure_connections = false

    traffic_weight {
      latest_revision = true
      percentage      = 100
    }

    dynamic "cors" {
      for_each = length(var.cors_allowed_origins) > 0 ? [var.cors_allowed_origins] : []
      content {
        allowed_origins = cors.value
      }
    }
  }

  template {
    min_replicas = var.container_min_replicas
    max_replicas = var.container_max_replicas

    container {
      name   = "functions"
      image  = var.container_image
      cpu    = var.container_cpu
      memory = var.container_memory

      dynamic "env" {
        for_each = local.container_env
        content {
          name  = env.key
          value = env.value
        }
      }

      # Kept out of the map above: a sensitive value would hide every setting in plans.
      env {
        name  = "APPLICATIONINSIGHTS_CONNECTION_STRING"
        value = var.application_insights_connection_string
      }

      dynamic "env" {
        for_each = local.container_secret_names
        content {
          name        = env.key
          secret_name = env.value
        }
      }

      # TCP probes: the host answers before the handler has started, and the bootstrap
      # image has no /api routes. The pipeline's smoke test checks /api/health.
      # Up to 100 s for the host to download its extension bundle and start.
      startup_probe {
        transport               = "TCP"
        port                    = var.container_port
        interval_seconds        = 10
        failure_count_threshold = 10
      }

      liveness_probe {
        transport        = "TCP"
        port             = var.container_port
        interval_seconds = 30
      }
    }

    http_scale_rule {
      name                = "http"
      concurrent_requests = tostring(var.container_http_concurrency)
    }

    dynamic "custom_scale_rule" {
      for_each = var.servicebus_scale_rules
      content {
        name             = "sb-${substr(md5(custom_scale_rule.key), 0, 12)}"
        custom_rule_type = "azure-servicebus"
        identity_id      = var.identity.id
        metadata = {
          namespace        = var.servicebus_namespace_name
          topicName        = custom_scale_rule.value.topic
          subscriptionName = custom_scale_rule.value.name
          messageCount     = tostring(var.servicebus_scale_message_count)
        }
      }
    }
  }

  lifecycle {
    # The pipeline deploys each release with `az containerapp update --image`.
    ignore_changes = [template[0].container[0].image]
  }

  depends_on = [azurerm_role_assignment.host_storage]
}

# Blob read/write/delete logs of the host storage (the identity-only replacement for
# classic Storage Analytics logging).
resource "azurerm_monitor_diagnostic_setting" "host_storage_blob" {
  name                       = "to-log-analytics"
  target_resource_id         = "${azurerm_storage_account.host.id}/blobServices/default"
  log_analytics_workspace_id = var.log_analytics_workspace_id

  enabled_log {
    category_group = "allLogs"
  }

  enabled_metric {
    category = "Transaction"
  }
}
