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

  kind     = var.account_kind
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

# ------------------------------------------------------------------------------------------
# Plan-time model check: the regional model catalog (the same list `az cognitiveservices model
# list -l <region>` prints) must offer model_name at model_version for deployment_sku_name,
# in a lifecycle state new deployments may use. Without it a retired or regional-missing model
# only fails halfway through `terraform apply`, after the account has been created.
# ------------------------------------------------------------------------------------------

data "azapi_resource_list" "models" {
  count = var.model_check_enabled ? 1 : 0

  type      = "Microsoft.CognitiveServices/locations/models@2024-10-01"
  parent_id = "/subscriptions/${var.subscription_id}/providers/Microsoft.CognitiveServices/locations/${local.catalog_location}"
  # Only the entries for this model name (JMESPath, evaluated by azapi); every version is kept
  # so the error can list the ones the region does offer.
  response_export_values = {
    versions = "value[?kind=='${var.account_kind}' && model.format=='OpenAI' && model.name=='${var.model_name}'].{version: model.version, lifecycle: model.lifecycleStatus, inference_deprecation: model.deprecation.inference, skus: model.skus[].{name: name, deprecation: deprecationDate, max_capacity: capacity.maximum}}"
  }
}

locals {
  # Region names in the catalog path are the short form ("swedencentral").
  catalog_location = lower(replace(var.location, " ", ""))

  catalog_entries          = var.model_check_enabled ? try(data.azapi_resource_list.models[0].output.versions, []) : []
  catalog_offered_versions = distinct([for e in local.catalog_entries : e.version])
  catalog_matches          = [for e in local.catalog_entries : e if e.version == var.model_version]
  catalog_lifecycles       = distinct([for e in local.catalog_matches : try(e.lifecycle, null) if try(e.lifecycle, null) != null])
  catalog_skus             = flatten([for e in local.catalog_matches : e.skus if try(length(e.skus), 0) > 0])
  catalog_sku              = [for s in local.catalog_skus : s if s.name == var.deployment_sku_name]
  catalog_sku_names        = distinct([for s in local.catalog_skus : s.name])
  # An unparsable or absent date counts as "no date announced".
  catalog_model_retired = anytrue([
    for e in local.catalog_matches : try(timecmp(e.inference_deprecation, plantimestamp()) <= 0, false)
  ])
  catalog_sku_retired = length(local.catalog_sku) > 0 && alltrue([
    for s in local.catalog_sku : try(timecmp(s.deprecation, plantimestamp()) <= 0, false)
  ])
  catalog_max_capacity = try(max([for s in local.catalog_sku : s.max_capacity if try(s.max_capacity, null) != null]...), null)
  model_label          = "Azure OpenAI model ${var.model_name} version ${var.model_version}"
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

  lifecycle {
    # Each condition is true when the check is off (model_check_enabled = false).
    precondition {
      condition     = !var.model_check_enabled || length(local.catalog_matches) > 0
      error_message = "${local.model_label} is not offered in ${local.catalog_location} (versions of ${var.model_name} offered there: ${length(local.catalog_offered_versions) > 0 ? join(", ", local.catalog_offered_versions) : "none"}). Set openai_model_name/openai_model_version in envs/<env>.tfvars to a version the region offers, or openai_location to a region that offers this one (docs/deploy.md, Azure OpenAI model)."
    }
    precondition {
      condition     = !var.model_check_enabled || length(local.catalog_matches) == 0 || (length(local.catalog_lifecycles) > 0 && alltrue([for l in local.catalog_lifecycles : contains(var.allowed_lifecycle_statuses, l)]))
      error_message = "${local.model_label} has lifecycle status ${jsonencode(local.catalog_lifecycles)} in ${local.catalog_location}; new deployments need one of ${jsonencode(var.allowed_lifecycle_statuses)}. Move to a newer version (the Microsoft Learn model retirement schedule lists replacements)."
    }
    precondition {
      condition     = !var.model_check_enabled || length(local.catalog_matches) == 0 || !local.catalog_model_retired
      error_message = "${local.model_label} is past its inference deprecation date in ${local.catalog_location}: deployments of it answer errors. Move to a newer version."
    }
    precondition {
      condition     = !var.model_check_enabled || length(local.catalog_matches) == 0 || (length(local.catalog_sku) > 0 && !local.catalog_sku_retired)
      error_message = "${local.model_label} is not offered as deployment type ${var.deployment_sku_name} in ${local.catalog_location} (offered: ${length(local.catalog_sku_names) > 0 ? join(", ", local.catalog_sku_names) : "none"}${local.catalog_sku_retired ? "; this type is past its deprecation date" : ""}). Set openai_deployment_sku accordingly."
    }
    precondition {
      condition     = !var.model_check_enabled || local.catalog_max_capacity == null || var.capacity <= coalesce(local.catalog_max_capacity, var.capacity)
      error_message = "openai_capacity = ${var.capacity} exceeds the maximum ${coalesce(local.catalog_max_capacity, 0)} the catalog allows for ${local.model_label} as ${var.deployment_sku_name} in ${local.catalog_location}."
    }
  }
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
