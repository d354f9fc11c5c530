variable "server_name" {
  type        = string
  description = "Logical server name (globally unique, lowercase, 1-63 characters)."

  validation {
    condition     = can(regex("^[a-z0-9][a-z0-9-]{0,61}[a-z0-9]$", var.server_name))
    error_message = "server_name must be lowercase letters, digits and hyphens, not starting or ending with a hyphen, e.g. \"qotd-dev-sql-a1b2\"."
  }
}

variable "database_name" {
  type        = string
  description = "Database name."
}

variable "location" {
  type        = string
  description = "Azure region."
}

variable "resource_group_name" {
  type        = string
  description = "Resource group."
}

variable "entra_admin_login" {
  type        = string
  description = "Display name of the Entra admin (group recommended)."
}

variable "entra_admin_object_id" {
  type        = string
  description = "Object id of the Entra admin."
}

variable "entra_admin_tenant_id" {
  type        = string
  description = "Tenant of the Entra admin."
}

variable "log_analytics_workspace_id" {
  type        = string
  description = "Workspace receiving audit events and database diagnostics."
}

variable "tags" {
  type        = map(string)
  description = "Tags."
  default     = {}
  nullable    = false
}

variable "sku_name" {
  type        = string
  description = "Database SKU, e.g. GP_S_Gen5_1 (serverless) or GP_Gen5_2."
  default     = "GP_S_Gen5_1"
}

variable "max_size_gb" {
  type        = number
  description = "Maximum size in GB."
  default     = 8
}

variable "auto_pause_delay_in_minutes" {
  type        = number
  description = "Serverless auto-pause delay (-1 disables). Ignored for provisioned SKUs."
  default     = 60
}

variable "min_capacity" {
  type        = number
  description = "Serverless minimum vCores. Ignored for provisioned SKUs."
  default     = 0.5
}

variable "zone_redundant" {
  type        = bool
  description = "Zone-redundant database."
  default     = false
}

variable "backup_storage_redundancy" {
  type        = string
  description = "Backup storage redundancy: Local, Zone, Geo or GeoZone."
  default     = "Geo"
}

variable "short_term_retention_days" {
  type        = number
  description = "Point-in-time restore retention (1-35 days)."
  default     = 7

  validation {
    condition     = var.short_term_retention_days >= 1 && var.short_term_retention_days <= 35
    error_message = "short_term_retention_days must be between 1 and 35, e.g. 7."
  }
}

variable "public_network_access_enabled" {
  type        = bool
  description = "Public endpoint enabled (still filtered by the firewall rules)."
  default     = true
}

variable "allow_azure_services" {
  type        = bool
  description = "Create the 0.0.0.0 \"allow Azure services\" rule."
  default     = true
}

variable "allowed_ip_ranges" {
  type = map(object({
    start_ip_address = string
    end_ip_address   = string
  }))
  description = "Rule name => IPv4 range allowed through the firewall."
  default     = {}
  nullable    = false
}
