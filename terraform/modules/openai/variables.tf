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
  description = "Model name, e.g. gpt-4o-mini."
  default     = "gpt-4o-mini"
}

variable "model_version" {
  type        = string
  description = "Model version, e.g. 2024-07-18."
  default     = "2024-07-18"
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
