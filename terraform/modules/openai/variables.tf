variable "name" {
  type        = string
  description = "Account name, also its custom subdomain (globally unique, 2-64 letters, digits, hyphens)."

  validation {
    condition     = can(regex("^[a-zA-Z0-9][a-zA-Z0-9-]{0,62}[a-zA-Z0-9]$", var.name))
    error_message = "name must be 2-64 letters, digits or hyphens, not starting or ending with a hyphen, e.g. \"qotd-dev-oai-a1b2\"."
  }
}

variable "location" {
  type        = string
  description = "Region offering the chosen model and deployment type."
}

variable "resource_group_name" {
  type        = string
  description = "Resource group."
}

variable "key_vault_id" {
  type        = string
  description = "Vault receiving the API key secret when local_auth_enabled."
}

variable "log_analytics_workspace_id" {
  type        = string
  description = "Workspace receiving the account's logs and metrics."
}

variable "tags" {
  type        = map(string)
  description = "Tags."
  default     = {}
  nullable    = false
}

variable "sku_name" {
  type        = string
  description = "Account SKU."
  default     = "S0"
}

variable "deployment_name" {
  type        = string
  description = "Deployment name the app calls (QOTD_OPENAI_DEPLOYMENT)."
  default     = "quiz-generator"
}

variable "model_name" {
  type        = string
  description = "Model name as the regional catalog spells it, e.g. gpt-5.4-mini."
  default     = "gpt-5.4-mini"

  validation {
    condition     = can(regex("^[a-z0-9][a-z0-9.-]{0,63}$", var.model_name))
    error_message = "model_name must be lowercase letters, digits, dots and hyphens, e.g. \"gpt-5.4-mini\"."
  }
}

variable "model_version" {
  type        = string
  description = "Model version, e.g. 2026-03-17."
  default     = "2026-03-17"

  validation {
    condition     = can(regex("^[0-9A-Za-z][0-9A-Za-z.-]{0,31}$", var.model_version))
    error_message = "model_version must be the catalog's version string, e.g. \"2026-03-17\"."
  }
}

variable "subscription_id" {
  type        = string
  description = "Subscription whose regional model catalog is read by the plan-time model check."
}

variable "account_kind" {
  type        = string
  description = "Account kind; also the `kind` the catalog entries are filtered on."
  default     = "OpenAI"
}

variable "model_check_enabled" {
  type        = bool
  description = "Read the regional model catalog at plan time and fail the plan when the model, version or deployment type is not offered, is past its deprecation date, or is in a lifecycle state outside allowed_lifecycle_statuses. Turn off only to plan while the catalog is unreachable."
  default     = true
}

variable "allowed_lifecycle_statuses" {
  type        = list(string)
  description = "Catalog lifecycle states a new deployment may use. `Deprecating` (existing customers only), `Deprecated` (retired) and `Legacy` are left out on purpose; add `Preview` only to try a preview model."
  default     = ["GenerallyAvailable", "Stable"]
  nullable    = false
}

variable "deployment_sku_name" {
  type        = string
  description = "Deployment type: GlobalStandard, Standard, DataZoneStandard, ProvisionedManaged."
  default     = "GlobalStandard"
}

variable "capacity" {
  type        = number
  description = "Capacity in thousands of tokens per minute."
  default     = 10

  validation {
    condition     = var.capacity >= 1
    error_message = "capacity must be at least 1 (thousand tokens per minute), e.g. 10."
  }
}

variable "public_network_access_enabled" {
  type        = bool
  description = "Public endpoint enabled (needed without private networking for the apps)."
  default     = true
}

variable "network_default_action" {
  type        = string
  description = "Allow or Deny for traffic not matched by allowed_ip_ranges."
  default     = "Allow"
}

variable "allowed_ip_ranges" {
  type        = list(string)
  description = "IPv4 addresses or CIDR ranges allowed when network_default_action is Deny."
  default     = []
  nullable    = false
}

variable "user_principal_ids" {
  type        = map(string)
  description = "Key => principal id granted Cognitive Services OpenAI User on the account."
  default     = {}
  nullable    = false
}

variable "local_auth_enabled" {
  type        = bool
  description = "Enable API-key authentication and store the key in Key Vault."
  default     = false
}

variable "api_key_secret_name" {
  type        = string
  description = "Secret name for the API key."
  default     = "openai-api-key"
}

variable "api_key_secret_version" {
  type        = number
  description = "Bump to rewrite the write-only secret value (after a key rotation)."
  default     = 1
}

variable "api_key_secret_expiration_date" {
  type        = string
  description = "Optional RFC 3339 expiry of the key secret. An expired secret breaks the Key Vault reference, so set it only with a rotation process."
  default     = null
}

variable "secret_reader_principal_ids" {
  type        = map(string)
  description = "Key => principal id granted Key Vault Secrets User on the API key secret only."
  default     = {}
  nullable    = false
}
