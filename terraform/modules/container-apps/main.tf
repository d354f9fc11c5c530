# Container Apps baseline: the managed environment (logs to the shared Log Analytics workspace
# through Azure Monitor, no workspace key), the registry for the qotd image, the Container Apps
# Job that applies database migrations inside Azure, and a generic map of extra apps.

resource "azurerm_container_app_environment" "this" {
  name                = var.environment_name
  location            = var.location
  resource_group_name = var.resource_group_name
  tags                = var.tags

  # Logs flow through the diagnostic setting below (identity-free), not the workspace key.
  logs_destination         = "azure-monitor"
  zone_redundancy_enabled  = var.zone_redundancy_enabled
  infrastructure_subnet_id = var.infrastructure_subnet_id

  # A workload-profiles environment; apps and jobs run on the serverless Consumption profile.
  workload_profile {
    name                  = "Consumption"
    workload_profile_type = "Consumption"
  }
}

resource "azurerm_monitor_diagnostic_setting" "environment" {
  name                       = "to-log-analytics"
  target_resource_id         = azurerm_container_app_environment.this.id
  log_analytics_workspace_id = var.log_analytics_workspace_id

  enabled_log {
    category_group = "allLogs"
  }

  enabled_metric {
    category = "AllMetrics"
  }
}

resource "azurerm_container_registry" "this" {
  #checkov:skip=CKV_AZURE_139:No private networking in this baseline: the Container Apps environment and GitHub-hosted runners reach the registry over its public endpoint, authenticated with Entra ID (AcrPull/AcrPush); anonymous pull and the admin user are off.
  #checkov:skip=CKV_AZURE_163:Image scanning is Microsoft Defender for Containers, a subscription-level plan owned by the platform team, not a registry setting.
  #checkov:skip=CKV_AZURE_164:Content trust (Notary v1) is Premium-only and deprecated in ACR; images are pulled by immutable tag from a private registry.
  #checkov:skip=CKV_AZURE_165:Single-region deployment; geo-replication is Premium-only. Images are rebuilt by the pipeline from source.
  #checkov:skip=CKV_AZURE_166:Quarantine is Premium-only; it is switched on when registry_sku = "Premium".
  #checkov:skip=CKV_AZURE_233:Zone redundancy is Premium-only; it follows zone_redundancy_enabled when registry_sku = "Premium". A lost registry only delays the next release.
  #checkov:skip=CKV_AZURE_237:Dedicated data endpoints are Premium-only and matter for firewall rules, which this baseline does not use.
  name                = var.registry_name
  location            = var.location
  resource_group_name = var.resource_group_name
  tags                = var.tags

  sku = var.registry_sku
  # Pulls and pushes authenticate with Entra ID (AcrPull / AcrPush), never the admin user.
  admin_enabled                 = false
  anonymous_pull_enabled        = false
  public_network_access_enabled = true
  retention_policy_in_days      = var.registry_sku == "Premium" ? var.registry_untagged_retention_days : null
  quarantine_policy_enabled     = var.registry_sku == "Premium"
  zone_redundancy_enabled       = var.registry_sku == "Premium" ? var.zone_redundancy_enabled : false
}

resource "azurerm_role_assignment" "acr_pull" {
  for_each = var.registry_pull_principal_ids

  scope                = azurerm_container_registry.this.id
  role_definition_name = "AcrPull"
  principal_id         = each.value
  principal_type       = "ServicePrincipal"
}

resource "azurerm_role_assignment" "acr_push" {
  for_each = var.registry_push_principal_ids

  scope                = azurerm_container_registry.this.id
  role_definition_name = "AcrPush"
  principal_id         = each.value
}

resource "azurerm_monitor_diagnostic_setting" "registry" {
  name                       = "to-log-analytics"
  target_resource_id         = azurerm_container_registry.this.id
  log_analytics_workspace_id = var.log_analytics_workspace_id

  enabled_log {
    category_group = "allLogs"
  }

  enabled_metric {
    category = "AllMetrics"
  }
}

# `qotd migrate` as a manually started job, run by the pipeline after each image push (see
# scripts/run-migration-job.sh). It runs under its own identity, the only one with db_ddladmin.
resource "azurerm_container_app_job" "migrate" {
  name                         = var.migration_job_name
  location                     = var.location
  resource_group_name          = var.resource_group_name
  tags                         = var.tags
  container_app_environment_id = azurerm_container_app_environment.this.id
  workload_profile_name        = "Consumption"

  replica_timeout_in_seconds = var.migration_timeout_seconds
  replica_retry_limit        = 0

  manual_trigger_config {
    parallelism              = 1
    replica_completion_count = 1
  }

  identity {
    type         = "UserAssigned"
    identity_ids = [var.migration_identity.id]
  }

  registry {
    server   = azurerm_container_registry.this.login_server
    identity = var.migration_identity.id
  }

  template {
    container {
      name   = "migrate"
      image  = var.migration_image
      cpu    = 0.25
      memory = "0.5Gi"
      # The image puts qotd on PATH; bash expands the connection string from the environment
      # (the CLI takes it as --database).
      command = ["/bin/bash", "-c"]
      args    = ["exec qotd migrate --database \"$QOTD_DATABASE_URL\""]

      dynamic "env" {
        for_each = var.migration_env
        content {
          name  = env.key
          value = env.value
        }
      }
    }
  }

  lifecycle {
    # The pipeline sets the image of each release (az containerapp job update --image).
    ignore_changes = [template[0].container[0].image]
  }

  depends_on = [azurerm_role_assignment.acr_pull]
}

# Generic container apps for the seed's container services (var.apps, empty by default).
resource "azurerm_container_app" "app" {
  for_each = var.apps

  name                         = "${var.app_name_prefix}-${each.key}"
  resource_group_name          = var.resource_group_name
  tags                         = var.tags
  container_app_environment_id = azurerm_container_app_environment.this.id
  revision_mode                = "Single"
  workload_profile_name        = "Consumption"

  identity {
    type         = "UserAssigned"
    identity_ids = [var.apps_identity.id]
  }

  registry {
    server   = azurerm_container_registry.this.login_server
    identity = var.apps_identity.id
  }

  dynamic "secret" {
    for_each = each.value.key_vault_secrets
    content {
      name                = lower(replace(secret.key, "_", "-"))
      key_vault_secret_id = secret.value
      identity            = var.apps_identity.id
    }
  }

  dynamic "ingress" {
    for_each = each.value.ingress == null ? [] : [each.value.ingress]
    content {
      external_enabled = ingress.value.external
      target_port      = ingress.value.target_port
      transport        = ingress.value.transport

      traffic_weight {
        latest_revision = true
        percentage      = 100
      }
    }
  }

  template {
    min_replicas = each.value.min_replicas
    max_replicas = each.value.max_replicas

    container {
      name    = each.key
      image   = each.value.image
      cpu     = each.value.cpu
      memory  = each.value.memory
      command = each.value.command
      args    = each.value.args

      dynamic "env" {
        for_each = each.value.env
        content {
          name  = env.key
          value = env.value
        }
      }

      dynamic "env" {
        for_each = each.value.key_vault_secrets
        content {
          name        = env.key
          secret_name = lower(replace(env.key, "_", "-"))
        }
      }
    }

    dynamic "http_scale_rule" {
      for_each = each.value.http_scale_concurrency == null ? [] : [each.value.http_scale_concurrency]
      content {
        name                = "http"
        concurrent_requests = tostring(http_scale_rule.value)
      }
    }

    dynamic "custom_scale_rule" {
      for_each = each.value.servicebus_scale == null ? [] : [each.value.servicebus_scale]
      content {
        name             = "servicebus"
        custom_rule_type = "azure-servicebus"
        identity_id      = var.apps_identity.id
        metadata = {
          namespace        = var.servicebus_namespace_name
          topicName        = custom_scale_rule.value.topic
          subscriptionName = custom_scale_rule.value.subscription
          messageCount     = tostring(custom_scale_rule.value.message_count)
        }
      }
    }
  }

  depends_on = [azurerm_role_assignment.acr_pull]
}
