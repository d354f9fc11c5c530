variable "name" {
  type        = string
  description = "Namespace name (globally unique, 6-50 characters)."

  validation {
    condition     = can(regex("^[a-zA-Z][a-zA-Z0-9-]{4,48}[a-zA-Z0-9]$", var.name))
    error_message = "name must be 6-50 letters, digits or hyphens, start with a letter and end with a letter or digit, e.g. \"qotd-dev-sb-a1b2\"."
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

variable "topics" {
  type        = set(string)
  description = "Topic names (derived by the caller from function.json)."
  nullable    = false
}

variable "subscriptions" {
  type = map(object({
    topic = string
    name  = string
  }))
  description = "\"<topic>/<subscription>\" => { topic, name } (derived by the caller from function.json). Every topic must be in `topics`."
  nullable    = false

  validation {
    condition     = alltrue([for s in values(var.subscriptions) : length(s.name) >= 1 && length(s.name) <= 50])
    error_message = "Subscription names must be 1-50 characters, e.g. \"leaderboard\"."
  }
}

variable "log_analytics_workspace_id" {
  type        = string
  description = "Workspace receiving the namespace's logs and metrics."
}

variable "tags" {
  type        = map(string)
  description = "Tags for the namespace."
  default     = {}
  nullable    = false
}

variable "sku" {
  type        = string
  description = "Standard or Premium (topics and duplicate detection need one of them)."
  default     = "Standard"

  validation {
    condition     = contains(["Standard", "Premium"], var.sku)
    error_message = "sku must be \"Standard\" or \"Premium\"."
  }
}

variable "premium_capacity" {
  type        = number
  description = "Messaging units when sku is Premium (1, 2, 4, 8 or 16)."
  default     = 1
}

variable "public_network_access_enabled" {
  type        = bool
  description = "Reachable from public networks (needed without VNet integration of the compute)."
  default     = true
}

variable "max_delivery_count" {
  type        = number
  description = "Deliveries before a message is dead-lettered."
  default     = 10
}

variable "lock_duration" {
  type        = string
  description = "Peek-lock duration, ISO 8601, at most PT5M."
  default     = "PT1M"
}

variable "default_message_ttl" {
  type        = string
  description = "Message time to live, ISO 8601. Expired messages are dead-lettered."
  default     = "P14D"
}

variable "duplicate_detection_history_time_window" {
  type        = string
  description = "Duplicate detection window, ISO 8601, 20 seconds to 7 days."
  default     = "PT10M"
}

variable "max_size_in_megabytes" {
  type        = number
  description = "Maximum topic size in MB."
  default     = 1024
}

variable "sender_principal_ids" {
  type        = map(string)
  description = "Key => principal id granted Data Sender on every topic."
  default     = {}
  nullable    = false
}

variable "receiver_principal_ids" {
  type        = map(string)
  description = "Key => principal id granted Data Receiver on every subscription."
  default     = {}
  nullable    = false
}

variable "scale_monitor_principal_ids" {
  type        = map(string)
  description = "Key => principal id granted Data Owner on every topic, for reading message counts when scaling."
  default     = {}
  nullable    = false
}
