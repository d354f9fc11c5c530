# Inputs of the qotd root module. Required inputs first, then optional ones grouped by the
# component they shape. envs/<env>.tfvars set them per environment.

# ----------------------------------------------------------------------------------------------
# Required
# ----------------------------------------------------------------------------------------------

variable "environment" {
  type        = string
  description = "Environment name used in every resource name (qotd-<env>-<component>): dev, staging, prod, or a short ephemeral name such as pr42."

  validation {
    condition     = can(regex("^[a-z][a-z0-9]{1,7}$", var.environment))
    error_message = "environment must be 2-8 lowercase letters or digits starting with a letter (Key Vault and storage names have tight length limits), e.g. \"dev\" or \"pr42\"."
  }
}

variable "location" {
  type        = string
  description = "Azure region for the resource group and everything in it (must offer Flex Consumption and Container Apps), e.g. \"swedencentral\"."
}

variable "auth_metadata_url" {
  type        = string
  description = "OIDC discovery URL of the token issuer, becomes QOTD_AUTH_METADATA_URL. Null when Terraform manages the External ID app registrations (entra_external_tenant_id set): then it is derived from the tenant. Otherwise required, e.g. \"https://contoso.ciamlogin.com/<tenant-id>/v2.0/.well-known/openid-configuration\" (or a B2C user flow's document)."
  default     = null

  validation {
    condition     = var.auth_metadata_url == null ? var.entra_external_tenant_id != null : startswith(coalesce(var.auth_metadata_url, "-"), "https://")
    error_message = "auth_metadata_url must be an https:// URL, e.g. \"https://contoso.ciamlogin.com/00000000-0000-0000-0000-000000000000/v2.0/.well-known/openid-configuration\"; it may be left null only when entra_external_tenant_id is set."
  }
}

variable "auth_audience" {
  type        = string
  description = "Audience(s) tokens must carry (the API app registration's client id or App ID URI; comma-separated for several), becomes QOTD_AUTH_AUDIENCE. Null when Terraform manages the External ID app registrations: then it is the API app's client id and App ID URI."
  default     = null

  validation {
    condition     = var.auth_audience == null ? var.entra_external_tenant_id != null : length(trimspace(coalesce(var.auth_audience, " "))) > 0
    error_message = "auth_audience must not be empty, e.g. \"11111111-1111-1111-1111-111111111111\" or \"api://qotd-api\"; it may be left null only when entra_external_tenant_id is set."
  }
}

variable "sql_entra_admin_login" {
  type        = string
  description = "Display name of the Entra group (or principal) that administers Azure SQL. Put the deployment identity in this group: it creates the database users for the managed identities."
}

variable "alert_email_addresses" {
  type        = list(string)
  description = "Email addresses the alert action group notifies."
  nullable    = false

  validation {
    condition     = length(var.alert_email_addresses) > 0 && alltrue([for e in var.alert_email_addresses : can(regex("^[^@\\s]+@[^@\\s]+\\.[^@\\s]+$", e))])
    error_message = "alert_email_addresses needs at least one valid address, e.g. [\"qotd-oncall@example.com\"]."
  }
}

# ----------------------------------------------------------------------------------------------
# General
# ----------------------------------------------------------------------------------------------

variable "subscription_id" {
  type        = string
  description = "Subscription to deploy into. Null uses ARM_SUBSCRIPTION_ID from the environment (as the pipeline does)."
  default     = null
}

variable "name_suffix" {
  type        = string
  description = "Suffix for globally unique names. Null uses a random 4-character suffix kept in state."
  default     = null

  validation {
    condition     = var.name_suffix == null || can(regex("^[a-z0-9]{3,4}$", coalesce(var.name_suffix, "x")))
    error_message = "name_suffix must be 3-4 lowercase letters or digits, e.g. \"a1b2\"."
  }
}

variable "tags" {
  type        = map(string)
  description = "Extra tags for every resource (workload, environment and managed-by are always added)."
  default     = {}
  nullable    = false
}

variable "resource_group_force_destroy" {
  type        = bool
  description = "Let `terraform destroy` delete the resource group even if Azure added resources to it (the destroy workflow sets it for ephemeral environments)."
  default     = false
}

variable "functions_dir" {
  type        = string
  description = "Folder holding <Function>/function.json. Null means ../functions next to this folder."
  default     = null
}

# ----------------------------------------------------------------------------------------------
# Function App
# ----------------------------------------------------------------------------------------------

variable "function_hosting" {
  type        = string
  description = "Where the Functions host runs the qotd custom handler: \"flex_consumption\" (zip deploy) or \"container_apps\" (the Functions container image in the Container Apps environment)."
  default     = "flex_consumption"

  validation {
    condition     = contains(["flex_consumption", "container_apps"], var.function_hosting)
    error_message = "function_hosting must be \"flex_consumption\" or \"container_apps\"."
  }
}

variable "flex_runtime_version" {
  type        = string
  description = "functionAppConfig.runtime.version for the `custom` runtime on Flex Consumption. Check the regional catalog with `az functionapp list-flexconsumption-runtimes -l <region> --runtime custom`."
  default     = "1.0"
}

variable "flex_instance_memory_mb" {
  type        = number
  description = "Flex Consumption instance memory size in MB."
  default     = 2048

  validation {
    condition     = contains([512, 2048, 4096], var.flex_instance_memory_mb)
    error_message = "flex_instance_memory_mb must be 512, 2048 or 4096."
  }
}

variable "flex_maximum_instance_count" {
  type        = number
  description = "Upper bound on Flex Consumption instances (caps cost and SQL connections)."
  default     = 40

  validation {
    condition     = var.flex_maximum_instance_count >= 1 && var.flex_maximum_instance_count <= 1000
    error_message = "flex_maximum_instance_count must be between 1 and 1000, e.g. 40."
  }
}

variable "flex_always_ready" {
  type        = map(number)
  description = "Always-ready instances per trigger group or function on Flex Consumption, e.g. { http = 1 } or { \"function:LeaderboardOnAttemptEvaluated\" = 1 }. Empty scales to zero."
  default     = {}
  nullable    = false
}

variable "flex_http_concurrency" {
  type        = number
  description = "Per-instance HTTP concurrency on Flex Consumption. Null keeps the platform default."
  default     = null
}

variable "basic_publishing_auth_enabled" {
  type        = bool
  description = "Allow basic-auth (publishing profile) deployments to the Function App. Off: deploy with Entra ID (az CLI, Core Tools)."
  default     = false
}

variable "cors_allowed_origins" {
  type        = list(string)
  description = "Browser origins allowed to call the API, e.g. [\"https://quiz.example.com\"]."
  default     = []
  nullable    = false
}

# ----------------------------------------------------------------------------------------------
# Containers (Container Apps baseline, container hosting, migration job)
# ----------------------------------------------------------------------------------------------

variable "container_bootstrap_image" {
  type        = string
  description = "Image the Functions container app and the migration job are created with, the same Functions host image as the Dockerfile's FUNCTIONS_IMAGE (pin it by digest, `...@sha256:<digest>`, see docs/deploy.md). The pipeline then sets the built qotd image (az containerapp update / job update); Terraform ignores later image changes."
  default     = "mcr.microsoft.com/azure-functions/dotnet-isolated:4-dotnet-isolated10.0"
}

variable "container_registry_sku" {
  type        = string
  description = "Azure Container Registry SKU holding the qotd image."
  default     = "Standard"

  validation {
    condition     = contains(["Basic", "Standard", "Premium"], var.container_registry_sku)
    error_message = "container_registry_sku must be Basic, Standard or Premium."
  }
}

variable "container_cpu" {
  type        = number
  description = "vCPU per replica of the Functions container (container_apps hosting)."
  default     = 0.5
}

variable "container_memory" {
  type        = string
  description = "Memory per replica of the Functions container, matching container_cpu (0.5 -> \"1Gi\")."
  default     = "1Gi"
}

variable "container_min_replicas" {
  type        = number
  description = "Minimum Functions container replicas. Keep at least 1: timer triggers (outbox dispatch, daily quiz) need a running host."
  default     = 1

  validation {
    condition     = var.container_min_replicas >= 1
    error_message = "container_min_replicas must be at least 1 so timer triggers keep firing."
  }
}

variable "container_max_replicas" {
  type        = number
  description = "Maximum Functions container replicas."
  default     = 10
}

variable "container_http_concurrency" {
  type        = number
  description = "Concurrent HTTP requests per replica before KEDA adds one."
  default     = 50
}

variable "container_servicebus_message_count" {
  type        = number
  description = "Active messages per replica, per subscription, before KEDA adds one."
  default     = 20
}

variable "apps" {
  type = map(object({
    image        = string
    cpu          = optional(number, 0.25)
    memory       = optional(string, "0.5Gi")
    min_replicas = optional(number, 0)
    max_replicas = optional(number, 5)
    command      = optional(list(string))
    args         = optional(list(string))
    env          = optional(map(string), {})
    # Environment variable name => versionless Key Vault secret URI, read with the app identity.
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
  description = "Extra container apps for the seed's container services, keyed by short name (qotd-<env>-<key>). Empty by default."
  default     = {}
  nullable    = false
}

# ----------------------------------------------------------------------------------------------
# Service Bus
# ----------------------------------------------------------------------------------------------

variable "servicebus_sku" {
  type        = string
  description = "Service Bus namespace SKU. Topics and duplicate detection need Standard or Premium."
  default     = "Standard"

  validation {
    condition     = contains(["Standard", "Premium"], var.servicebus_sku)
    error_message = "servicebus_sku must be Standard or Premium (Basic has no topics)."
  }
}

variable "servicebus_max_delivery_count" {
  type        = number
  description = "Deliveries before a message is dead-lettered."
  default     = 10

  validation {
    condition     = var.servicebus_max_delivery_count >= 1 && var.servicebus_max_delivery_count <= 2000
    error_message = "servicebus_max_delivery_count must be between 1 and 2000, e.g. 10."
  }
}

variable "servicebus_lock_duration" {
  type        = string
  description = "Peek-lock duration (ISO 8601, at most PT5M). The host renews locks up to host.json maxAutoLockRenewalDuration."
  default     = "PT1M"

  validation {
    condition     = can(regex("^PT([1-5]M|[0-9]{1,3}S|[1-4]M[0-9]{1,2}S)$", var.servicebus_lock_duration))
    error_message = "servicebus_lock_duration must be an ISO 8601 duration up to PT5M, e.g. \"PT1M\" or \"PT30S\"."
  }
}

variable "servicebus_default_message_ttl" {
  type        = string
  description = "Message time to live (ISO 8601); expired messages are dead-lettered."
  default     = "P14D"
}

variable "servicebus_duplicate_detection_window" {
  type        = string
  description = "Duplicate detection history window (ISO 8601, 20 s to 7 days). The outbox reuses the event id as MessageId, so a resend inside the window is dropped."
  default     = "PT10M"
}

variable "servicebus_grant_owner_for_scaling" {
  type        = bool
  description = "Grant the app identity Service Bus Data Owner on each topic so the Flex scale controller can read message counts (otherwise it estimates by peeking). Always on for container_apps hosting, where KEDA needs it."
  default     = false
}

# ----------------------------------------------------------------------------------------------
# Azure SQL
# ----------------------------------------------------------------------------------------------

variable "sql_entra_admin_object_id" {
  type        = string
  description = "Object id of the SQL Entra admin. Null looks the group up by sql_entra_admin_login (needs Graph read permission)."
  default     = null
}

variable "sql_sku_name" {
  type        = string
  description = "Database SKU, e.g. \"GP_S_Gen5_1\" (serverless) or \"GP_Gen5_2\"."
  default     = "GP_S_Gen5_1"
}

variable "sql_max_size_gb" {
  type        = number
  description = "Maximum database size in GB."
  default     = 8
}

variable "sql_auto_pause_delay_minutes" {
  type        = number
  description = "Serverless auto-pause delay in minutes (-1 disables auto-pause). Ignored for provisioned SKUs."
  default     = 60
}

variable "sql_min_capacity" {
  type        = number
  description = "Serverless minimum vCores. Ignored for provisioned SKUs."
  default     = 0.5
}

variable "sql_zone_redundant" {
  type        = bool
  description = "Zone-redundant database."
  default     = false
}

variable "sql_backup_storage_redundancy" {
  type        = string
  description = "Backup storage redundancy: Local, Zone, Geo or GeoZone."
  default     = "Geo"

  validation {
    condition     = contains(["Local", "Zone", "Geo", "GeoZone"], var.sql_backup_storage_redundancy)
    error_message = "sql_backup_storage_redundancy must be Local, Zone, Geo or GeoZone."
  }
}

variable "sql_short_term_retention_days" {
  type        = number
  description = "Point-in-time restore retention in days (1-35)."
  default     = 7
}

variable "sql_allow_azure_services" {
  type        = bool
  description = "Allow connections from Azure services (the 0.0.0.0 rule). Needed without VNet integration: Flex and Container Apps egress IPs are not fixed."
  default     = true
}

variable "sql_allowed_ip_ranges" {
  type = map(object({
    start_ip_address = string
    end_ip_address   = string
  }))
  description = "Extra firewall rules, e.g. { office = { start_ip_address = \"203.0.113.10\", end_ip_address = \"203.0.113.10\" } }."
  default     = {}
  nullable    = false
}

variable "sql_pool_size" {
  type        = number
  description = "Connections per handler process (QOTD_SQL_POOL_SIZE, 1-200). Times the instance count, it must stay under the database's session limit."
  default     = 10

  validation {
    condition     = var.sql_pool_size >= 1 && var.sql_pool_size <= 200
    error_message = "sql_pool_size must be between 1 and 200, e.g. 10."
  }
}

variable "sql_connect_timeout_seconds" {
  type        = number
  description = "Seconds for token + TCP + TLS + login of one connection (QOTD_SQL_CONNECT_TIMEOUT_SECONDS, 1-300). A paused serverless database takes tens of seconds to resume."
  default     = 30

  validation {
    condition     = var.sql_connect_timeout_seconds >= 1 && var.sql_connect_timeout_seconds <= 300
    error_message = "sql_connect_timeout_seconds must be between 1 and 300, e.g. 30."
  }
}

variable "sql_statement_timeout_seconds" {
  type        = number
  description = "Seconds for one statement, also the retry budget for transient failures (QOTD_SQL_STATEMENT_TIMEOUT_SECONDS, 1-3600)."
  default     = 30

  validation {
    condition     = var.sql_statement_timeout_seconds >= 1 && var.sql_statement_timeout_seconds <= 3600
    error_message = "sql_statement_timeout_seconds must be between 1 and 3600, e.g. 30."
  }
}

# ----------------------------------------------------------------------------------------------
# Key Vault
# ----------------------------------------------------------------------------------------------

variable "key_vault_soft_delete_retention_days" {
  type        = number
  description = "Soft-delete retention of the Key Vault (7-90 days). Purge protection is always on."
  default     = 90

  validation {
    condition     = var.key_vault_soft_delete_retention_days >= 7 && var.key_vault_soft_delete_retention_days <= 90
    error_message = "key_vault_soft_delete_retention_days must be between 7 and 90, e.g. 90."
  }
}

# ----------------------------------------------------------------------------------------------
# Azure OpenAI
# ----------------------------------------------------------------------------------------------

variable "openai_location" {
  type        = string
  description = "Region for the Azure OpenAI account when the model is not offered in `location`. Null uses `location`."
  default     = null
}

variable "openai_deployment_name" {
  type        = string
  description = "Model deployment name, becomes QOTD_OPENAI_DEPLOYMENT."
  default     = "quiz-generator"
}

variable "openai_model_name" {
  type        = string
  description = "Model to deploy (set per environment in envs/<env>.tfvars, with openai_model_version). It must support structured outputs (strict json_schema). The plan fails early when the region does not offer it (openai_model_check_enabled). docs/deploy.md says how the default was chosen and how to pick another."
  default     = "gpt-5.4-mini"
}

variable "openai_model_version" {
  type        = string
  description = "Version of openai_model_name; never upgraded automatically (NoAutoUpgrade)."
  default     = "2026-03-17"
}

variable "openai_model_check_enabled" {
  type        = bool
  description = "Check at plan time, in the regional model catalog, that openai_model_name/openai_model_version is offered as openai_deployment_sku and is GA, not deprecated; the plan fails with a message naming what the region offers. Turn off only to plan while the catalog cannot be read."
  default     = true
}

variable "openai_deployment_sku" {
  type        = string
  description = "Deployment type: GlobalStandard, Standard, DataZoneStandard, ..."
  default     = "GlobalStandard"
}

variable "openai_capacity" {
  type        = number
  description = "Deployment capacity in thousands of tokens per minute."
  default     = 10
}

variable "openai_api_version" {
  type        = string
  description = "Dated Azure OpenAI data-plane api-version (QOTD_OPENAI_API_VERSION), used only with openai_api_style = \"deployments\". Null leaves the setting empty: the v1 API has no api-version."
  default     = null
}

variable "openai_api_style" {
  type        = string
  description = "URL shape the handler calls (QOTD_OPENAI_API_STYLE): \"v1\" (/openai/v1/chat/completions, the deployment name as `model`; GA, no api-version) or \"deployments\" (/openai/deployments/<name>/chat/completions?api-version=openai_api_version)."
  default     = "v1"

  validation {
    condition     = contains(["deployments", "v1"], var.openai_api_style)
    error_message = "openai_api_style must be \"deployments\" or \"v1\"."
  }
}

variable "openai_request_timeout_seconds" {
  type        = number
  description = "Timeout of one Azure OpenAI request (QOTD_OPENAI_TIMEOUT_SECONDS, 1-600)."
  default     = 30

  validation {
    condition     = var.openai_request_timeout_seconds >= 1 && var.openai_request_timeout_seconds <= 600
    error_message = "openai_request_timeout_seconds must be between 1 and 600, e.g. 30."
  }
}

variable "openai_max_completion_tokens" {
  type        = number
  description = "Upper bound on completion tokens per request, reasoning tokens included (QOTD_OPENAI_MAX_COMPLETION_TOKENS). Null leaves the setting empty, so the handler's own per-call budgets apply."
  default     = null

  validation {
    condition     = var.openai_max_completion_tokens == null || (coalesce(var.openai_max_completion_tokens, 1) >= 256 && coalesce(var.openai_max_completion_tokens, 1) <= 128000)
    error_message = "openai_max_completion_tokens must be between 256 and 128000, e.g. 16000, or null."
  }
}

variable "openai_reasoning" {
  type        = string
  description = "QOTD_OPENAI_REASONING: \"auto\" derives true/false from openai_model_name (o-series and gpt-5* except *-chat are reasoning models); \"true\" or \"false\" overrides it."
  default     = "auto"

  validation {
    condition     = contains(["auto", "true", "false"], var.openai_reasoning)
    error_message = "openai_reasoning must be auto, true or false."
  }
}

variable "openai_generation_budget_seconds" {
  type        = number
  description = "Time budget of one quiz generation before it falls back to the bank (QOTD_OPENAI_MAX_SECONDS, 1-3600). Keep it under host.json functionTimeout (10 min)."
  default     = 120

  validation {
    condition     = var.openai_generation_budget_seconds >= 1 && var.openai_generation_budget_seconds <= 3600
    error_message = "openai_generation_budget_seconds must be between 1 and 3600, e.g. 120."
  }
}

variable "openai_local_auth_enabled" {
  type        = bool
  description = "Enable API-key auth on the OpenAI account and hand the key to the app as a Key Vault secret (QOTD_OPENAI_API_KEY). Off: the app uses its managed identity."
  default     = false
}

variable "openai_api_key_secret_version" {
  type        = number
  description = "Bump to rewrite the OpenAI key secret after rotating the account key (write-only secret value)."
  default     = 1
}

# ----------------------------------------------------------------------------------------------
# App settings (see locals.tf app_settings)
# ----------------------------------------------------------------------------------------------

variable "auth_subject_claim" {
  type        = string
  description = "Claim holding the user id (QOTD_AUTH_SUBJECT_CLAIM). `oid` for Entra External ID (stable across apps; `sub` is pairwise per app); B2C user flows put the object id in `sub`."
  default     = "oid"
}

variable "auth_required_scope" {
  type        = string
  description = "Delegated scope a user token must carry in `scp` (QOTD_AUTH_REQUIRED_SCOPE); also the scope the entra-apps module exposes on the API."
  default     = "quiz.play"

  validation {
    condition     = can(regex("^[A-Za-z0-9][A-Za-z0-9._-]{0,119}$", var.auth_required_scope))
    error_message = "auth_required_scope must be a scope value such as \"quiz.play\" (letters, digits, dots, hyphens, underscores)."
  }
}

variable "web_client_id" {
  type        = string
  description = "Client id of the player page's SPA registration (QOTD_WEB_CLIENT_ID) when the app registrations are made by hand. Ignored (taken from modules/entra-apps) when entra_external_tenant_id is set."
  default     = ""
  nullable    = false
}

variable "web_authority" {
  type        = string
  description = "OIDC authority the player page signs in with (QOTD_WEB_AUTHORITY), e.g. \"https://<subdomain>.ciamlogin.com/<tenant-id>\", when the app registrations are made by hand. Ignored when entra_external_tenant_id is set."
  default     = ""
  nullable    = false
}

variable "web_api_scope" {
  type        = string
  description = "Full scope the player page requests for the API (QOTD_WEB_API_SCOPE), e.g. \"api://<api-client-id>/quiz.play\", when the app registrations are made by hand. Ignored when entra_external_tenant_id is set."
  default     = ""
  nullable    = false
}

variable "dispatch_schedule" {
  type        = string
  description = "NCRONTAB schedule (6 fields, UTC) of the DispatchOutbox safety-net timer, the app setting QOTD_DISPATCH_SCHEDULE that functions/DispatchOutbox/function.json names as %QOTD_DISPATCH_SCHEDULE%. Events are published in-process right after each commit; the timer only catches what a dead instance left behind. Each run opens a database connection, so with a serverless database keep its period longer than sql_auto_pause_delay_minutes or the database never pauses."
  default     = "0 */5 * * * *"

  validation {
    condition     = can(regex("^\\S+( \\S+){5}$", var.dispatch_schedule))
    error_message = "dispatch_schedule must be a 6-field NCRONTAB expression {second} {minute} {hour} {day} {month} {day-of-week}, e.g. \"0 */5 * * * *\" (every 5 minutes) or \"0 0 */2 * * *\" (every 2 hours)."
  }
}

variable "auth_roles_claim" {
  type        = string
  description = "Claim holding app roles (QOTD_AUTH_ROLES_CLAIM)."
  default     = "roles"
}

variable "auth_jwks_min_refresh_seconds" {
  type        = number
  description = "Minimum seconds between JWKS refetches on an unknown kid (QOTD_AUTH_JWKS_MIN_REFRESH_SECONDS, 0-3600)."
  default     = 30

  validation {
    condition     = var.auth_jwks_min_refresh_seconds >= 0 && var.auth_jwks_min_refresh_seconds <= 3600
    error_message = "auth_jwks_min_refresh_seconds must be between 0 and 3600, e.g. 30."
  }
}

variable "log_format" {
  type        = string
  description = "Handler log format (QOTD_LOG_FORMAT): json or text."
  default     = "json"

  validation {
    condition     = contains(["json", "text"], var.log_format)
    error_message = "log_format must be \"json\" or \"text\"."
  }
}

variable "log_filter" {
  type        = string
  description = "Handler log filter (QOTD_LOG), tracing EnvFilter syntax, e.g. \"info\" or \"info,qotd=debug\"."
  default     = "info"
}

variable "dispatch_in_process" {
  type        = bool
  description = "Run the outbox dispatcher loop inside each handler process as well as from the DispatchOutbox timer (QOTD_DISPATCH_IN_PROCESS)."
  default     = true
}

variable "catch_up_on_start" {
  type        = bool
  description = "Generate today's quiz at start-up when it is missing (QOTD_CATCH_UP_ON_START)."
  default     = true
}

# ----------------------------------------------------------------------------------------------
# Monitoring
# ----------------------------------------------------------------------------------------------

variable "log_retention_days" {
  type        = number
  description = "Log Analytics retention in days."
  default     = 30
}

variable "log_daily_quota_gb" {
  type        = number
  description = "Log Analytics daily ingestion cap in GB (-1 for none)."
  default     = -1
}

variable "alert_servicebus_backlog_threshold" {
  type        = number
  description = "Alert when a topic's active messages stay above this count."
  default     = 100
}

variable "alert_failed_executions_threshold" {
  type        = number
  description = "Alert when at least this many function executions fail within 15 minutes."
  default     = 3
}

variable "alert_http_5xx_rate_percent" {
  type        = number
  description = "Alert when the share of HTTP requests answered 5xx within 15 minutes exceeds this percentage."
  default     = 5
}

variable "alert_http_5xx_minimum_requests" {
  type        = number
  description = "Ignore the 5xx rate when fewer requests than this arrived in the window."
  default     = 20
}

# ----------------------------------------------------------------------------------------------
# Sign-in: Microsoft Entra External ID app registrations (modules/entra-apps)
# ----------------------------------------------------------------------------------------------

variable "entra_external_tenant_id" {
  type        = string
  description = "Tenant id (GUID) of the External ID (customer) tenant, which is created by hand once. Set: Terraform creates the API, player page (SPA) and smoke-test app registrations there through the `azuread.external` provider and derives QOTD_AUTH_* and QOTD_WEB_* from them. Null: nothing is created and auth_metadata_url/auth_audience (and web_*) come from the tfvars."
  default     = null

  validation {
    condition     = var.entra_external_tenant_id == null || can(regex("^[0-9a-fA-F]{8}-([0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}$", coalesce(var.entra_external_tenant_id, "-")))
    error_message = "entra_external_tenant_id must be a tenant GUID, e.g. \"11111111-1111-1111-1111-111111111111\", or null."
  }
}

variable "entra_external_subdomain" {
  type        = string
  description = "Subdomain of the External ID tenant's sign-in host, <subdomain>.ciamlogin.com (the part before .onmicrosoft.com of its initial domain). Required with entra_external_tenant_id."
  default     = null

  validation {
    condition     = var.entra_external_tenant_id == null || can(regex("^[a-z0-9][a-z0-9-]{0,62}$", coalesce(var.entra_external_subdomain, "-")))
    error_message = "entra_external_subdomain is required with entra_external_tenant_id: the lowercase <subdomain> of <subdomain>.ciamlogin.com, e.g. \"qotdplayers\"."
  }
}

variable "entra_external_client_id" {
  type        = string
  description = "Client id of the app registration, in the External ID tenant, that Terraform signs in as to manage the app registrations there (federated credential for GitHub OIDC; see docs/deploy.md). Null uses ARM_CLIENT_ID, or the Azure CLI login for that tenant on a laptop."
  default     = null
}

variable "api_identifier_uri" {
  type        = string
  description = "Application ID URI of the API registration. Null uses api://<api client id>, which every tenant policy accepts; a custom api:// value may be refused by a tenant's app management policy."
  default     = null
}

variable "api_app_role_assignment_required" {
  type        = bool
  description = "Require an app role assignment on the API's service principal before Entra issues tokens for it. Off by default: any customer who signs up must be able to get a player token (a user without an assignment would be refused); app-only callers need an app role anyway."
  default     = false
}

variable "web_local_redirect_uris" {
  type        = list(string)
  description = "Extra redirect URIs of the player page's SPA registration for local runs, e.g. [\"http://127.0.0.1:7071/\"] in dev. Keep it empty in production registrations."
  default     = []
  nullable    = false
}

variable "github_repository" {
  type        = string
  description = "owner/repo of the GitHub repository whose deploy workflow runs the smoke test: the subject of the smoke-test client's federated credential is repo:<owner/repo>:environment:<github_environment>. The deploy workflow passes it. Null creates the smoke-test registration without a federated credential."
  default     = null
}

variable "github_environment" {
  type        = string
  description = "GitHub environment the deploy job of this Terraform environment runs in (ephemeral environments run in \"dev\"). Null means the same as `environment`."
  default     = null
}
