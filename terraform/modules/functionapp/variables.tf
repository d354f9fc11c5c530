variable "name" {
  type        = string
  description = "Function App name (Flex); its host name is <name>.azurewebsites.net, so it must be globally unique."
}

variable "service_plan_name" {
  type        = string
  description = "Flex Consumption plan name."
}

variable "storage_account_name" {
  type        = string
  description = "Host storage account name (3-24 lowercase letters and digits, globally unique)."

  validation {
    condition     = can(regex("^[a-z0-9]{3,24}$", var.storage_account_name))
    error_message = "storage_account_name must be 3-24 lowercase letters or digits, e.g. \"qotddevfunca1b2\"."
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

variable "hosting" {
  type        = string
  description = "flex_consumption or container_apps."

  validation {
    condition     = contains(["flex_consumption", "container_apps"], var.hosting)
    error_message = "hosting must be \"flex_consumption\" or \"container_apps\"."
  }
}

variable "identity" {
  type = object({
    id           = string
    client_id    = string
    principal_id = string
  })
  description = "User-assigned identity the host and the handler run as."
}

variable "app_settings" {
  type        = map(string)
  description = "Application settings the qotd handler reads (identical for both hostings)."
  nullable    = false
}

variable "application_insights_connection_string" {
  type        = string
  description = "Application Insights connection string."
  sensitive   = true
}

variable "tags" {
  type        = map(string)
  description = "Tags."
  default     = {}
  nullable    = false
}

variable "key_vault_secret_settings" {
  type = map(object({
    uri         = string
    resource_id = string
  }))
  description = "Setting name => Key Vault secret ({ versionless URI, versionless resource id }). Overrides the same name in app_settings."
  default     = {}
  nullable    = false
}


variable "cors_allowed_origins" {
  type        = list(string)
  description = "Browser origins allowed to call the API."
  default     = []
  nullable    = false
}

# ---- Flex Consumption ----

variable "flex_runtime_version" {
  type        = string
  description = "Version of the `custom` runtime in the regional Flex catalog."
  default     = "1.0"
}

variable "flex_instance_memory_in_mb" {
  type        = number
  description = "Instance memory: 512, 2048 or 4096."
  default     = 2048
}

variable "flex_maximum_instance_count" {
  type        = number
  description = "Maximum instances (1-1000)."
  default     = 40
}

variable "flex_always_ready" {
  type        = map(number)
  description = "Always-ready instances per group (http, blob, durable) or function:<Name>."
  default     = {}
  nullable    = false
}

variable "flex_http_concurrency" {
  type        = number
  description = "Per-instance HTTP concurrency; null for the platform default."
  default     = null
}

variable "basic_publishing_auth_enabled" {
  type        = bool
  description = "Allow basic-auth publishing credentials."
  default     = false
}

# ---- Container Apps ----

variable "container_app_name" {
  type        = string
  description = "Name of the Functions container app (2-32 lowercase letters, digits, hyphens). Null derives it from `name` without its suffix."
  default     = null
}

variable "container_app_environment_id" {
  type        = string
  description = "Container Apps environment for container_apps hosting."
  default     = null
}

variable "container_registry_server" {
  type        = string
  description = "Registry the Functions image is pulled from with the identity."
  default     = null
}

variable "container_image" {
  type        = string
  description = "Image the container app is created with (the pipeline deploys releases)."
  default     = "mcr.microsoft.com/azure-functions/dotnet-isolated:4-dotnet-isolated10.0"
}

variable "container_port" {
  type        = number
  description = "Port the Functions host listens on inside the container (ASPNETCORE_URLS)."
  default     = 8080
}

variable "container_cpu" {
  type        = number
  description = "vCPU per replica."
  default     = 0.5
}

variable "container_memory" {
  type        = string
  description = "Memory per replica, e.g. \"1Gi\"."
  default     = "1Gi"
}

variable "container_min_replicas" {
  type        = number
  description = "Minimum replicas (at least 1 so timers fire)."
  default     = 1
}

variable "container_max_replicas" {
  type        = number
  description = "Maximum replicas."
  default     = 10
}

variable "container_http_concurrency" {
  type        = number
  description = "Concurrent requests per replica for the KEDA HTTP rule."
  default     = 50
}

variable "servicebus_namespace_name" {
  type        = string
  description = "Namespace the KEDA Service Bus rules watch."
  default     = null
}

variable "servicebus_scale_rules" {
  type = map(object({
    topic = string
    name  = string
  }))
  description = "\"<topic>/<subscription>\" => subscription the host consumes; one KEDA rule each."
  default     = {}
  nullable    = false
}

variable "servicebus_scale_message_count" {
  type        = number
  description = "Active messages per replica before KEDA scales out."
  default     = 20
}

variable "log_analytics_workspace_id" {
  type        = string
  description = "Workspace receiving the host storage's blob logs."
}
