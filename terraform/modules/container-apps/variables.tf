variable "environment_name" {
  type        = string
  description = "Container Apps environment name."
}

variable "location" {
  type        = string
  description = "Azure region."
}

variable "resource_group_name" {
  type        = string
  description = "Resource group."
}

variable "log_analytics_workspace_id" {
  type        = string
  description = "Shared workspace receiving environment, registry and app logs."
}

variable "registry_name" {
  type        = string
  description = "Container registry name (globally unique, 5-50 letters and digits)."

  validation {
    condition     = can(regex("^[a-zA-Z0-9]{5,50}$", var.registry_name))
    error_message = "registry_name must be 5-50 letters or digits, e.g. \"qotddevacra1b2\"."
  }
}

variable "migration_job_name" {
  type        = string
  description = "Name of the job running `qotd migrate` (2-32 lowercase letters, digits, hyphens)."

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{0,30}[a-z0-9]$", var.migration_job_name))
    error_message = "migration_job_name must be 2-32 lowercase letters, digits or hyphens, e.g. \"qotd-dev-migrate\"."
  }
}

variable "migration_identity" {
  type = object({
    id        = string
    client_id = string
  })
  description = "User-assigned identity the migration job runs as (pulls the image, connects to SQL)."
}

variable "migration_image" {
  type        = string
  description = "Image the job is created with; the pipeline replaces it on every release."
}

variable "app_name_prefix" {
  type        = string
  description = "Prefix of the extra apps' names: <prefix>-<key>."
}

variable "apps_identity" {
  type = object({
    id        = string
    client_id = string
  })
  description = "User-assigned identity of the extra apps (image pulls, Key Vault secrets, KEDA scalers)."
}

variable "tags" {
  type        = map(string)
  description = "Tags."
  default     = {}
  nullable    = false
}

variable "registry_sku" {
  type        = string
  description = "Basic, Standard or Premium."
  default     = "Standard"
}

variable "registry_untagged_retention_days" {
  type        = number
  description = "Days untagged manifests are kept (Premium only)."
  default     = 7
}

variable "registry_pull_principal_ids" {
  type        = map(string)
  description = "Key => principal id granted AcrPull on the registry."
  default     = {}
  nullable    = false
}

variable "registry_push_principal_ids" {
  type        = map(string)
  description = "Key => principal id granted AcrPush on the registry (the deployment identity)."
  default     = {}
  nullable    = false
}

variable "zone_redundancy_enabled" {
  type        = bool
  description = "Zone-redundant environment (needs infrastructure_subnet_id) and registry (Premium)."
  default     = false
}

variable "infrastructure_subnet_id" {
  type        = string
  description = "Subnet for a VNet-integrated environment. Null uses a Microsoft-managed network."
  default     = null
}

variable "migration_env" {
  type        = map(string)
  description = "Environment of the migration container (QOTD_DATABASE_URL, AZURE_CLIENT_ID, ...)."
  default     = {}
  nullable    = false
}

variable "migration_timeout_seconds" {
  type        = number
  description = "Maximum run time of one migration execution."
  default     = 900
}

variable "servicebus_namespace_name" {
  type        = string
  description = "Namespace the extra apps' Service Bus scale rules watch."
  default     = null
}

variable "apps" {
  type = map(object({
    image             = string
    cpu               = optional(number, 0.25)
    memory            = optional(string, "0.5Gi")
    min_replicas      = optional(number, 0)
    max_replicas      = optional(number, 5)
    command           = optional(list(string))
    args              = optional(list(string))
    env               = optional(map(string), {})
    key_vault_secrets = optional(map(string), {})
    ingress = optional(object({
      external    = optional(bool, false)
      target_port = number
      transport   = optional(string, "auto")
    }))
    http_scale_concurrency = optional(number)
    servicebus_scale = optional(object({
      topic         = string
      subscription  = string
      message_count = optional(number, 20)
    }))
  }))
  description = "Extra container apps keyed by short name (see README)."
  default     = {}
  nullable    = false

  validation {
    condition     = alltrue([for k in keys(var.apps) : can(regex("^[a-z][a-z0-9-]{0,13}$", k))])
    error_message = "apps keys must be 1-14 lowercase letters, digits or hyphens starting with a letter, e.g. \"worker\"."
  }
}
