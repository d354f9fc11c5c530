variable "identities" {
  type        = map(string)
  description = "Identity key => resource name, e.g. { app = \"qotd-dev-id-app\" }."
  nullable    = false

  validation {
    condition     = length(var.identities) > 0
    error_message = "identities needs at least one entry, e.g. { app = \"qotd-dev-id-app\" }."
  }
}

variable "location" {
  type        = string
  description = "Azure region."
}

variable "resource_group_name" {
  type        = string
  description = "Resource group the identities are created in."
}

variable "tags" {
  type        = map(string)
  description = "Tags for every identity."
  default     = {}
  nullable    = false
}
