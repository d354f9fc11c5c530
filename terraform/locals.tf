# Names, tags, what the app's function.json files declare, and the Function App's settings.

locals {
  # ---------------------------------------------------------------------------------------
  # Naming: qotd-<env>-<component>. Names Azure requires to be globally unique also carry a
  # 4-character suffix; storage and registry names drop the hyphens (letters and digits only).
  # ---------------------------------------------------------------------------------------
  suffix = coalesce(var.name_suffix, random_string.suffix.result)
  prefix = "qotd-${var.environment}"

  names = {
    prefix                     = local.prefix
    resource_group             = "${local.prefix}-rg"
    identity_app               = "${local.prefix}-id-app"
    identity_migrate           = "${local.prefix}-id-migrate"
    log_analytics              = "${local.prefix}-log"
    application_insights       = "${local.prefix}-appi"
    action_group               = "${local.prefix}-ag"
    action_group_short         = substr("qotd${var.environment}", 0, 12)
    servicebus                 = "${local.prefix}-sb-${local.suffix}"
    sql_server                 = "${local.prefix}-sql-${local.suffix}"
    sql_database               = "${local.prefix}-sqldb"
    key_vault                  = "${local.prefix}-kv-${local.suffix}" # <= 24 chars: env <= 8
    openai                     = "${local.prefix}-oai-${local.suffix}"
    container_apps_environment = "${local.prefix}-cae"
    container_registry         = "qotd${var.environment}acr${local.suffix}"
    migration_job              = "${local.prefix}-migrate"
    service_plan               = "${local.prefix}-plan"
    function_app               = "${local.prefix}-func-${local.suffix}"
    function_container_app     = "${local.prefix}-func"
    function_storage           = "qotd${var.environment}func${local.suffix}" # <= 24 chars
  }

  tags = merge(var.tags, {
    workload    = "qotd"
    environment = var.environment
    managed-by  = "terraform"
  })

  # ---------------------------------------------------------------------------------------
  # functions/*/function.json is the single source of truth for the Service Bus entities the
  # app triggers on (and publishes to, through the outbox). Topics and subscriptions are
  # derived here and nowhere else; scripts/check_settings.py asserts it.
  # ---------------------------------------------------------------------------------------
  functions_dir = coalesce(var.functions_dir, "${path.root}/../functions")
  function_manifests = {
    for f in fileset(local.functions_dir, "*/function.json") :
    dirname(f) => jsondecode(file("${local.functions_dir}/${f}"))
  }
  function_bindings = flatten([
    for function_name, manifest in local.function_manifests : [
      for binding in manifest.bindings : merge(binding, { function = function_name })
    ]
  ])
  servicebus_triggers = [
    for b in local.function_bindings : b
    if b.type == "serviceBusTrigger" && can(b.topicName)
  ]
  servicebus_topic_outputs = [
    for b in local.function_bindings : b.topicName
    if b.type == "serviceBus" && can(b.topicName)
  ]
  servicebus_topics = toset(concat(
    [for t in local.servicebus_triggers : t.topicName],
    local.servicebus_topic_outputs,
  ))
  # "<topic>/<subscription>" => { topic, name }. Two functions on the same subscription would
  # compete for its messages, so the key collision Terraform reports for that is wanted.
  servicebus_subscriptions = {
    for t in local.servicebus_triggers : "${t.topicName}/${t.subscriptionName}" => {
      topic = t.topicName
      name  = t.subscriptionName
    }
  }

  # The KEDA Service Bus scaler and the Flex scale controller read message counts, which the
  # Service Bus RBAC model only allows with Data Owner. Containers need it to scale at all.
  servicebus_scale_monitoring = var.servicebus_grant_owner_for_scaling || var.function_hosting == "container_apps"

  # ---------------------------------------------------------------------------------------
  # Sign-in. With entra_external_tenant_id set, modules/entra-apps owns the registrations and
  # everything below comes from it; otherwise from the tfvars (registrations made by hand).
  # ---------------------------------------------------------------------------------------
  entra_managed      = var.entra_external_tenant_id != null
  github_environment = coalesce(var.github_environment, var.environment)
  # Host names are predictable, so the SPA registration can name them before the app exists:
  # Flex: <name>.azurewebsites.net; Container Apps: <app>.<environment default domain>.
  app_url = var.function_hosting == "flex_consumption" ? "https://${local.names.function_app}.azurewebsites.net" : "https://${local.names.function_container_app}.${module.container_apps.default_domain}"

  auth_metadata_url = local.entra_managed ? one(module.entra_apps[*].metadata_url) : var.auth_metadata_url
  # v2 access tokens carry the client id; the App ID URI is accepted too.
  auth_audience = local.entra_managed ? join(",", [one(module.entra_apps[*].api_client_id), one(module.entra_apps[*].api_identifier_uri)]) : var.auth_audience
  web_client_id = local.entra_managed ? one(module.entra_apps[*].web_client_id) : var.web_client_id
  web_authority = local.entra_managed ? one(module.entra_apps[*].authority) : var.web_authority
  web_api_scope = local.entra_managed ? one(module.entra_apps[*].api_scope) : var.web_api_scope

  sql_entra_admin_object_id = coalesce(var.sql_entra_admin_object_id, one(data.azuread_group.sql_admin[*].object_id))

  # ADO.NET connection strings: the managed identity named by `User Id` gets its own token.
  database_url_app     = "Server=tcp:${module.sql.server_fqdn},1433;Database=${module.sql.database_name};Encrypt=true;Authentication=Active Directory Managed Identity;User Id=${module.identity.identities["app"].client_id}"
  database_url_migrate = "Server=tcp:${module.sql.server_fqdn},1433;Database=${module.sql.database_name};Encrypt=true;Authentication=Active Directory Managed Identity;User Id=${module.identity.identities["migrate"].client_id}"

  # ---------------------------------------------------------------------------------------
  # Every setting the qotd binary reads (handlers/platform/config.rs and friends), plus the
  # identity-based Service Bus connection named in function.json. Both hosting options get
  # exactly this map; the functionapp module adds only host plumbing (storage, runtime).
  # scripts/check_settings.py fails CI when the code reads a QOTD_* name missing here.
  # ---------------------------------------------------------------------------------------
  app_settings = {
    QOTD_DATA_DIR                      = "/tmp/qotd"
    QOTD_DATABASE_URL                  = local.database_url_app
    QOTD_DEV_ISSUER                    = "false"
    QOTD_AUTH_METADATA_URL             = local.auth_metadata_url
    QOTD_AUTH_AUDIENCE                 = local.auth_audience
    QOTD_AUTH_SUBJECT_CLAIM            = var.auth_subject_claim
    QOTD_AUTH_ROLES_CLAIM              = var.auth_roles_claim
    QOTD_AUTH_JWKS_MIN_REFRESH_SECONDS = tostring(var.auth_jwks_min_refresh_seconds)
    QOTD_AUTH_REQUIRED_SCOPE           = var.auth_required_scope
    # App-only callers need the API's service app role (modules/entra-apps creates it); any
    # External ID user flow is accepted (B2C deployments list theirs).
    QOTD_AUTH_SERVICE_ROLE     = "quiz.service"
    QOTD_AUTH_ALLOWED_POLICIES = ""
    # The player page is served by the app itself (same origin): no other origin needs CORS.
    QOTD_CORS_ALLOWED_ORIGINS = ""
    # HTTP listener limits (the code's defaults, stated so operators can see and tune them).
    QOTD_HTTP_HEADER_TIMEOUT_SECONDS = "10"
    QOTD_HTTP_IDLE_TIMEOUT_SECONDS   = "120"
    QOTD_HTTP_BODY_TIMEOUT_SECONDS   = "30"
    QOTD_HTTP_MAX_CONNECTIONS        = "1024"
    QOTD_HTTP_MAX_INFLIGHT_BODY_MIB  = "64"
    # The qotd.metrics log line the monitoring alerts read (docs/deploy.md).
    QOTD_METRICS_INTERVAL_SECONDS = "60"
    # The player page's sign-in (authorization code + PKCE against External ID).
    QOTD_WEB_CLIENT_ID = local.web_client_id
    QOTD_WEB_AUTHORITY = local.web_authority
    QOTD_WEB_API_SCOPE = local.web_api_scope
    # Read by the Functions host, not by qotd: functions/DispatchOutbox/function.json has
    # "schedule": "%QOTD_DISPATCH_SCHEDULE%" (check_settings.py checks every %NAME%).
    QOTD_DISPATCH_SCHEDULE   = var.dispatch_schedule
    QOTD_LOG_FORMAT          = var.log_format
    QOTD_LOG                 = var.log_filter
    QOTD_DISPATCH_IN_PROCESS = tostring(var.dispatch_in_process)
    QOTD_CATCH_UP_ON_START   = tostring(var.catch_up_on_start)
    # The shared Azure credential factory: the user-assigned identity named by AZURE_CLIENT_ID.
    QOTD_AZURE_CREDENTIAL  = "managedidentity"
    QOTD_OPENAI_ENDPOINT   = module.openai.endpoint
    QOTD_OPENAI_DEPLOYMENT = module.openai.deployment_name
    # v1 by default: /openai/v1/chat/completions, no api-version (empty = unset for qotd).
    QOTD_OPENAI_API_VERSION           = var.openai_api_version == null ? "" : var.openai_api_version
    QOTD_OPENAI_API_STYLE             = var.openai_api_style
    QOTD_OPENAI_MAX_COMPLETION_TOKENS = var.openai_max_completion_tokens == null ? "" : tostring(var.openai_max_completion_tokens)
    # The deployment name hides the model, so say it here: o-series and gpt-5* (not *-chat)
    # are reasoning models (no temperature, budgets for reasoning tokens).
    QOTD_OPENAI_REASONING = var.openai_reasoning != "auto" ? var.openai_reasoning : (
      can(regex("^(o[0-9]|gpt-?5)", lower(var.openai_model_name))) && !strcontains(lower(var.openai_model_name), "chat") ? "true" : "false"
    )
    QOTD_OPENAI_API_KEY_HEADER         = "api-key"
    QOTD_OPENAI_TIMEOUT_SECONDS        = tostring(var.openai_request_timeout_seconds)
    QOTD_OPENAI_MAX_SECONDS            = tostring(var.openai_generation_budget_seconds)
    QOTD_SQL_POOL_SIZE                 = tostring(var.sql_pool_size)
    QOTD_SQL_CONNECT_TIMEOUT_SECONDS   = tostring(var.sql_connect_timeout_seconds)
    QOTD_SQL_STATEMENT_TIMEOUT_SECONDS = tostring(var.sql_statement_timeout_seconds)
    # Empty means "use the managed identity"; replaced by a Key Vault reference below when
    # openai_local_auth_enabled is true.
    QOTD_OPENAI_API_KEY = ""
    # Empty: publish to https://<namespace> (the override exists for emulators and tests).
    QOTD_SERVICEBUS_ENDPOINT                      = ""
    ServiceBusConnection__fullyQualifiedNamespace = module.servicebus.fqdn
    ServiceBusConnection__credential              = "managedidentity"
    ServiceBusConnection__clientId                = module.identity.identities["app"].client_id
    AZURE_CLIENT_ID                               = module.identity.identities["app"].client_id
  }

  # Settings whose value is a Key Vault secret: a `@Microsoft.KeyVault(...)` reference on
  # Flex, a Key Vault-backed secret on Container Apps.
  app_secret_settings = var.openai_local_auth_enabled ? {
    QOTD_OPENAI_API_KEY = module.openai.api_key_secret
  } : {}
}
