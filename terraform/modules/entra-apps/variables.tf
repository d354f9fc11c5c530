variable "name_prefix" {
  type        = string
  description = "Display name prefix of the registrations, e.g. \"qotd-dev\" (→ qotd-dev-api, -web, -smoke)."
}

variable "tenant_id" {
  type        = string
  description = "External ID tenant id (GUID)."
}

variable "tenant_subdomain" {
  type        = string
  description = "<subdomain> of the tenant's sign-in host <subdomain>.ciamlogin.com."
}

variable "app_url" {
  type        = string
  description = "https base URL the player page is served from (the Function App); / and /play become SPA redirect URIs."

  validation {
    condition     = startswith(var.app_url, "https://")
    error_message = "app_url must be an https:// URL, e.g. \"https://qotd-dev-func-a1b2.azurewebsites.net\"."
  }
}

variable "local_redirect_uris" {
  type        = list(string)
  description = "Extra SPA redirect URIs for local runs, e.g. [\"http://127.0.0.1:7071/\"]."
  default     = []
  nullable    = false
}

variable "player_scope" {
  type        = string
  description = "Delegated scope value players' tokens carry in `scp`."
  default     = "quiz.play"
}

variable "api_identifier_uri" {
  type        = string
  description = "Application ID URI of the API. Null: api://<client id>."
  default     = null
}

variable "api_app_role_assignment_required" {
  type        = bool
  description = "Require an app role assignment on the API's service principal (blocks players without one)."
  default     = false
}

variable "github_repository" {
  type        = string
  description = "owner/repo for the smoke-test client's federated credentials; null for none."
  default     = null

  validation {
    condition     = var.github_repository == null || can(regex("^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+$", coalesce(var.github_repository, "-")))
    error_message = "github_repository must be \"owner/repo\", e.g. \"contoso/qotd\"."
  }
}

variable "github_environments" {
  type        = list(string)
  description = "GitHub environments whose deploy jobs may sign in as the smoke-test client (subject repo:<repo>:environment:<env>)."
  default     = []
  nullable    = false
}
