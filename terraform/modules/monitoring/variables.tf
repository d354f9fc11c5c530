variable "log_analytics_name" {
  type        = string
  description = "Log Analytics workspace name."
}

variable "application_insights_name" {
  type        = string
  description = "Application Insights component name (also the prefix of the alert names)."
}

variable "action_group_name" {
  type        = string
  description = "Action group name."
}

variable "action_group_short_name" {
  type        = string
  description = "Action group short name shown in notifications (at most 12 characters)."

  validation {
    condition     = length(var.action_group_short_name) <= 12
    error_message = "action_group_short_name must be at most 12 characters, e.g. \"qotddev\"."
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

variable "alert_email_addresses" {
  type        = list(string)
  description = "Email receivers of the action group."
  nullable    = false
}

variable "servicebus_namespace_id" {
  type        = string
  description = "Service Bus namespace watched by the dead-letter and backlog alerts."
  default     = null
}

variable "tags" {
  type        = map(string)
  description = "Tags for every resource."
  default     = {}
  nullable    = false
}

variable "retention_in_days" {
  type        = number
  description = "Workspace retention in days (30-730)."
  default     = 30
}

variable "daily_quota_gb" {
  type        = number
  description = "Daily ingestion cap in GB; -1 for none."
  default     = -1
}

variable "metrics_publisher_principal_ids" {
  type        = map(string)
  description = "Key => principal id granted Monitoring Metrics Publisher on the Application Insights component."
  default     = {}
  nullable    = false
}

variable "servicebus_alerts_enabled" {
  type        = bool
  description = "Create the dead-letter and backlog alerts (requires servicebus_namespace_id)."
  default     = false
}

variable "servicebus_backlog_threshold" {
  type        = number
  description = "Active-message count per topic above which the backlog alert fires."
  default     = 100
}

variable "failed_executions_threshold" {
  type        = number
  description = "Failed executions within 15 minutes that fire the alert."
  default     = 3
}

variable "http_5xx_rate_percent_threshold" {
  type        = number
  description = "Percentage of 5xx answers within 15 minutes above which the alert fires."
  default     = 5
}

variable "http_5xx_rate_minimum_requests" {
  type        = number
  description = "Requests needed in the window before the 5xx rate is judged."
  default     = 20
}

variable "quiz_bank_fallback_alerts_enabled" {
  type        = bool
  description = "Create the alert on the handler's \"fell back to the bank\" log line."
  default     = true
}
