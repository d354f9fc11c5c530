variable "name" {
  type        = string
  description = "Vault name (globally unique, 3-24 letters, digits and hyphens, starting with a letter)."

  validation {
    condition     = can(regex("^[a-zA-Z][a-zA-Z0-9-]{1,22}[a-zA-Z0-9]$", var.name)) && !strcontains(var.name, "--")
    error_message = "name must be 3-24 letters, digits or single hyphens, start with a letter and end with a letter or digit, e.g. \"qotd-dev-kv-a1b2\"."
  }
}

variable "location" {
  type        = string
  description = "Azure region."
}

variable "resource_group_name" {
  type        = string
  description = "Resource group."
}

variable "tenant_id" {
  type        = string
  description = "Entra tenant the vault trusts."
}

variable "log_analytics_workspace_id" {
  type        = string
  description = "Workspace receiving the vault's audit log."
}

variable "tags" {
  type        = map(string)
  description = "Tags."
  default     = {}
  nullable    = false
}

variable "sku_name" {
  type        = string
  description = "standard or premium."
  default     = "standard"
}

variable "soft_delete_retention_days" {
  type        = number
  description = "Soft-delete retention in days (7-90)."
  default     = 90
}

variable "public_network_access_enabled" {
  type        = bool
  description = "Public endpoint enabled. Flex Consumption resolves Key Vault references over it unless the app has VNet integration."
  default     = true
}

variable "network_default_action" {
  type        = string
  description = "Allow or Deny for traffic not matched by allowed_ip_ranges (Deny needs private networking for the apps)."
  default     = "Allow"

  validation {
    condition     = contains(["Allow", "Deny"], var.network_default_action)
    error_message = "network_default_action must be \"Allow\" or \"Deny\"."
  }
}

variable "allowed_ip_ranges" {
  type        = list(string)
  description = "IPv4 addresses or CIDR ranges allowed when network_default_action is Deny."
  default     = []
  nullable    = false
}

variable "secrets_officer_principal_ids" {
  type        = map(string)
  description = "Key => principal id granted Key Vault Secrets Officer on the vault (whoever writes secrets: the deployment identity)."
  default     = {}
  nullable    = false
}
