# qotd on Azure: one resource group per environment holding the Function App (Flex Consumption
# by default, or the Functions container on Container Apps), Service Bus, Azure SQL, Key Vault,
# Azure OpenAI, the Container Apps baseline and monitoring.
#
# State lives in an azurerm backend configured per environment at `terraform init` time:
#   terraform -chdir=terraform init -backend-config=envs/dev.backend.hcl
# (copy envs/dev.backend.hcl.example; docs/deploy.md explains the one-time state storage setup).
#
# Identity only: the Function App, the migration job and the container apps authenticate with
# user-assigned managed identities; no connection string, key or password is created here
# (the optional OpenAI key is the one exception, off by default, and lives in Key Vault).

terraform {
  backend "azurerm" {}
}

provider "azurerm" {
  subscription_id = var.subscription_id
  # The Functions host storage account has shared-key access disabled, so data-plane calls
  # made by the provider must use Entra ID.
  storage_use_azuread = true

  features {
    key_vault {
      # Purge protection is on: a destroyed vault stays soft-deleted for the retention period.
      purge_soft_delete_on_destroy    = false
      recover_soft_deleted_key_vaults = true
    }
    cognitive_account {
      # Lets an ephemeral environment be destroyed and recreated under the same name.
      purge_soft_delete_on_destroy = true
    }
    resource_group {
      # Refuse to delete a resource group holding resources Terraform does not manage, except
      # when the destroy workflow tears down an ephemeral environment.
      prevent_deletion_if_contains_resources = !var.resource_group_force_destroy
    }
  }
}

# Workforce tenant (the subscription's): looks up the SQL admin group.
provider "azuread" {}

# The External ID (customer) tenant holding the players and the app registrations
# (modules/entra-apps). Unused while entra_external_tenant_id is null.
provider "azuread" {
  alias     = "external"
  tenant_id = var.entra_external_tenant_id
  client_id = var.entra_external_client_id
}

# Plan-time reads ARM has no azurerm data source for (the regional model catalog).
provider "azapi" {
  subscription_id = var.subscription_id
}

data "azurerm_client_config" "current" {}

# Resolves the SQL Entra admin group by display name when its object id is not given.
data "azuread_group" "sql_admin" {
  count            = var.sql_entra_admin_object_id == null ? 1 : 0
  display_name     = var.sql_entra_admin_login
  security_enabled = true
}

# Four characters appended to the names that must be globally unique (storage, Key Vault,
# Service Bus, SQL, OpenAI, registry, Function App host name). Kept in state, so stable.
resource "random_string" "suffix" {
  length  = 4
  lower   = true
  upper   = false
  numeric = true
  special = false
}

resource "azurerm_resource_group" "this" {
  name     = local.names.resource_group
  location = var.location
  tags     = local.tags
}

module "identity" {
  source = "./modules/identity"

  location            = azurerm_resource_group.this.location
  resource_group_name = azurerm_resource_group.this.name
  tags                = local.tags
  identities = {
    app     = local.names.identity_app
    migrate = local.names.identity_migrate
  }
}

module "monitoring" {
  source = "./modules/monitoring"

  log_analytics_name        = local.names.log_analytics
  application_insights_name = local.names.application_insights
  action_group_name         = local.names.action_group
  action_group_short_name   = local.names.action_group_short
  location                  = azurerm_resource_group.this.location
  resource_group_name       = azurerm_resource_group.this.name
  tags                      = local.tags

  retention_in_days     = var.log_retention_days
  daily_quota_gb        = var.log_daily_quota_gb
  alert_email_addresses = var.alert_email_addresses

  metrics_publisher_principal_ids = {
    app = module.identity.identities["app"].principal_id
  }

  servicebus_alerts_enabled         = true
  servicebus_namespace_id           = module.servicebus.resource_id
  servicebus_backlog_threshold      = var.alert_servicebus_backlog_threshold
  failed_executions_threshold       = var.alert_failed_executions_threshold
  http_5xx_rate_percent_threshold   = var.alert_http_5xx_rate_percent
  http_5xx_rate_minimum_requests    = var.alert_http_5xx_minimum_requests
  quiz_bank_fallback_alerts_enabled = true
}

module "servicebus" {
  source = "./modules/servicebus"

  name                = local.names.servicebus
  location            = azurerm_resource_group.this.location
  resource_group_name = azurerm_resource_group.this.name
  tags                = local.tags
  sku                 = var.servicebus_sku

  # Derived from functions/*/function.json (locals.tf); never listed here.
  topics        = local.servicebus_topics
  subscriptions = local.servicebus_subscriptions

  max_delivery_count                      = var.servicebus_max_delivery_count
  lock_duration                           = var.servicebus_lock_duration
  default_message_ttl                     = var.servicebus_default_message_ttl
  duplicate_detection_history_time_window = var.servicebus_duplicate_detection_window

  sender_principal_ids   = { app = module.identity.identities["app"].principal_id }
  receiver_principal_ids = { app = module.identity.identities["app"].principal_id }
  # Reading message counts (Flex scale controller, KEDA) needs the Manage claim, i.e. Data Owner.
  scale_monitor_principal_ids = local.servicebus_scale_monitoring ? {
    app = module.identity.identities["app"].principal_id
  } : {}

  log_analytics_workspace_id = module.monitoring.log_analytics_workspace_id
}

module "sql" {
  source = "./modules/sql"

  server_name         = local.names.sql_server
  database_name       = local.names.sql_database
  location            = azurerm_resource_group.this.location
  resource_group_name = azurerm_resource_group.this.name
  tags                = local.tags

  entra_admin_login     = var.sql_entra_admin_login
  entra_admin_object_id = local.sql_entra_admin_object_id
  entra_admin_tenant_id = data.azurerm_client_config.current.tenant_id

  sku_name                    = var.sql_sku_name
  max_size_gb                 = var.sql_max_size_gb
  auto_pause_delay_in_minutes = var.sql_auto_pause_delay_minutes
  min_capacity                = var.sql_min_capacity
  zone_redundant              = var.sql_zone_redundant
  backup_storage_redundancy   = var.sql_backup_storage_redundancy
  short_term_retention_days   = var.sql_short_term_retention_days
  allow_azure_services        = var.sql_allow_azure_services
  allowed_ip_ranges           = var.sql_allowed_ip_ranges

  log_analytics_workspace_id = module.monitoring.log_analytics_workspace_id
}

module "keyvault" {
  source = "./modules/keyvault"

  name                       = local.names.key_vault
  location                   = azurerm_resource_group.this.location
  resource_group_name        = azurerm_resource_group.this.name
  tags                       = local.tags
  tenant_id                  = data.azurerm_client_config.current.tenant_id
  soft_delete_retention_days = var.key_vault_soft_delete_retention_days

  # Whoever runs Terraform writes the (optional) OpenAI key secret.
  secrets_officer_principal_ids = { deployer = data.azurerm_client_config.current.object_id }

  log_analytics_workspace_id = module.monitoring.log_analytics_workspace_id
}

module "openai" {
  source = "./modules/openai"

  name                = local.names.openai
  location            = coalesce(var.openai_location, azurerm_resource_group.this.location)
  resource_group_name = azurerm_resource_group.this.name
  tags                = local.tags

  deployment_name     = var.openai_deployment_name
  model_name          = var.openai_model_name
  model_version       = var.openai_model_version
  deployment_sku_name = var.openai_deployment_sku
  capacity            = var.openai_capacity

  # Fails the plan when the region's catalog does not offer the model as configured.
  model_check_enabled = var.openai_model_check_enabled
  subscription_id     = data.azurerm_client_config.current.subscription_id

  user_principal_ids = { app = module.identity.identities["app"].principal_id }

  local_auth_enabled          = var.openai_local_auth_enabled
  key_vault_id                = module.keyvault.resource_id
  api_key_secret_name         = "openai-api-key"
  api_key_secret_version      = var.openai_api_key_secret_version
  secret_reader_principal_ids = { app = module.identity.identities["app"].principal_id }

  log_analytics_workspace_id = module.monitoring.log_analytics_workspace_id
}

module "container_apps" {
  source = "./modules/container-apps"

  environment_name    = local.names.container_apps_environment
  location            = azurerm_resource_group.this.location
  resource_group_name = azurerm_resource_group.this.name
  tags                = local.tags

  log_analytics_workspace_id = module.monitoring.log_analytics_workspace_id

  registry_name = local.names.container_registry
  registry_sku  = var.container_registry_sku
  registry_pull_principal_ids = {
    app     = module.identity.identities["app"].principal_id
    migrate = module.identity.identities["migrate"].principal_id
  }
  registry_push_principal_ids = { deployer = data.azurerm_client_config.current.object_id }

  migration_job_name = local.names.migration_job
  migration_identity = module.identity.identities["migrate"]
  migration_image    = var.container_bootstrap_image
  migration_env = {
    QOTD_DATABASE_URL     = local.database_url_migrate
    QOTD_AZURE_CREDENTIAL = "managedidentity"
    AZURE_CLIENT_ID       = module.identity.identities["migrate"].client_id
    # A paused serverless database needs time to resume on the first connection.
    QOTD_SQL_CONNECT_TIMEOUT_SECONDS = tostring(var.sql_connect_timeout_seconds)
    QOTD_LOG_FORMAT                  = var.log_format
    QOTD_LOG                         = var.log_filter
  }

  apps                      = var.apps
  apps_identity             = module.identity.identities["app"]
  app_name_prefix           = local.names.prefix
  servicebus_namespace_name = module.servicebus.name
}

# API, player page and smoke-test registrations in the External ID tenant.
module "entra_apps" {
  source = "./modules/entra-apps"
  count  = local.entra_managed ? 1 : 0

  providers = {
    azuread = azuread.external
  }

  name_prefix      = local.prefix
  tenant_id        = var.entra_external_tenant_id
  tenant_subdomain = var.entra_external_subdomain

  # Predicted, not read from module.functionapp: the app's settings depend on this module.
  app_url                          = local.app_url
  local_redirect_uris              = var.web_local_redirect_uris
  player_scope                     = var.auth_required_scope
  api_identifier_uri               = var.api_identifier_uri
  api_app_role_assignment_required = var.api_app_role_assignment_required

  github_repository   = var.github_repository
  github_environments = [local.github_environment]
}

# The SPA redirect URIs use the predicted URL; warn if the platform named the app otherwise.
check "function_app_url" {
  assert {
    condition     = module.functionapp.url == local.app_url
    error_message = "The app's URL is ${module.functionapp.url}, not the predicted ${local.app_url}: the player page's redirect URIs (modules/entra-apps) point at the wrong host."
  }
}

module "functionapp" {
  source = "./modules/functionapp"

  name                 = local.names.function_app
  container_app_name   = local.names.function_container_app
  service_plan_name    = local.names.service_plan
  storage_account_name = local.names.function_storage
  location             = azurerm_resource_group.this.location
  resource_group_name  = azurerm_resource_group.this.name
  tags                 = local.tags

  hosting  = var.function_hosting
  identity = module.identity.identities["app"]

  app_settings              = local.app_settings
  key_vault_secret_settings = local.app_secret_settings

  application_insights_connection_string = module.monitoring.application_insights_connection_string
  log_analytics_workspace_id             = module.monitoring.log_analytics_workspace_id

  flex_runtime_version          = var.flex_runtime_version
  flex_instance_memory_in_mb    = var.flex_instance_memory_mb
  flex_maximum_instance_count   = var.flex_maximum_instance_count
  flex_always_ready             = var.flex_always_ready
  flex_http_concurrency         = var.flex_http_concurrency
  basic_publishing_auth_enabled = var.basic_publishing_auth_enabled
  cors_allowed_origins          = var.cors_allowed_origins

  container_app_environment_id   = module.container_apps.environment_id
  container_registry_server      = module.container_apps.registry_login_server
  container_image                = var.container_bootstrap_image
  container_cpu                  = var.container_cpu
  container_memory               = var.container_memory
  container_min_replicas         = var.container_min_replicas
  container_max_replicas         = var.container_max_replicas
  container_http_concurrency     = var.container_http_concurrency
  servicebus_namespace_name      = module.servicebus.name
  servicebus_scale_rules         = local.servicebus_subscriptions
  servicebus_scale_message_count = var.container_servicebus_message_count
}
