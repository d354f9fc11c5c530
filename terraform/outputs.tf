# Outputs the pipeline (and a human with `terraform output`) needs to deploy and test.

output "resource_group_name" {
  description = "Resource group of this environment."
  value       = azurerm_resource_group.this.name
}

output "function_hosting" {
  description = "flex_consumption or container_apps: tells the pipeline how to deploy."
  value       = var.function_hosting
}

output "function_app_name" {
  description = "Name of the Function App (Flex) or of the Functions container app (Container Apps)."
  value       = module.functionapp.name
}

output "function_app_url" {
  description = "Base URL of the API, e.g. https://<host>; routes are <url>/api/..."
  value       = module.functionapp.url
}

output "servicebus_namespace" {
  description = "Service Bus namespace name."
  value       = module.servicebus.name
}

output "servicebus_namespace_fqdn" {
  description = "Service Bus namespace host name (ServiceBusConnection__fullyQualifiedNamespace)."
  value       = module.servicebus.fqdn
}

output "servicebus_topics" {
  description = "Topics created from functions/*/function.json."
  value       = sort(tolist(local.servicebus_topics))
}

output "sql_server_name" {
  description = "Azure SQL logical server name."
  value       = module.sql.server_name
}

output "sql_server_fqdn" {
  description = "Azure SQL logical server host name."
  value       = module.sql.server_fqdn
}

output "sql_database_name" {
  description = "Azure SQL database name."
  value       = module.sql.database_name
}

output "key_vault_uri" {
  description = "Key Vault URI."
  value       = module.keyvault.vault_uri
}

output "identity_client_id" {
  description = "Client id of the Function App's user-assigned identity (AZURE_CLIENT_ID)."
  value       = module.identity.identities["app"].client_id
}

output "identity_name" {
  description = "Name of the Function App's identity (the database user name)."
  value       = module.identity.identities["app"].name
}

output "migration_identity_client_id" {
  description = "Client id of the migration job's identity."
  value       = module.identity.identities["migrate"].client_id
}

output "migration_identity_name" {
  description = "Name of the migration job's identity (the database user name)."
  value       = module.identity.identities["migrate"].name
}

output "migration_job_name" {
  description = "Container Apps Job that runs `qotd migrate`."
  value       = module.container_apps.migration_job_name
}

output "container_registry_login_server" {
  description = "Registry the pipeline pushes the qotd image to."
  value       = module.container_apps.registry_login_server
}

output "container_registry_name" {
  description = "Registry name (for az acr login)."
  value       = module.container_apps.registry_name
}

output "container_app_urls" {
  description = "Ingress URLs of the extra container apps (var.apps)."
  value       = module.container_apps.app_urls
}

output "openai_endpoint" {
  description = "Azure OpenAI endpoint."
  value       = module.openai.endpoint
}

output "application_insights_name" {
  description = "Application Insights component name."
  value       = module.monitoring.application_insights_name
}

output "openai_deployment_name" {
  description = "Azure OpenAI deployment name (QOTD_OPENAI_DEPLOYMENT)."
  value       = module.openai.deployment_name
}

# ---- Sign-in (External ID) ----

output "auth_metadata_url" {
  description = "OIDC discovery URL the handler trusts (QOTD_AUTH_METADATA_URL)."
  value       = local.auth_metadata_url
}

output "auth_audience" {
  description = "Accepted token audiences (QOTD_AUTH_AUDIENCE)."
  value       = local.auth_audience
}

output "web_client_id" {
  description = "Client id of the player page's SPA registration (QOTD_WEB_CLIENT_ID)."
  value       = local.web_client_id
}

output "web_authority" {
  description = "Authority the player page signs in with (QOTD_WEB_AUTHORITY)."
  value       = local.web_authority
}

output "web_api_scope" {
  description = "Scope the player page requests for the API (QOTD_WEB_API_SCOPE)."
  value       = local.web_api_scope
}

output "smoke_client_id" {
  description = "Client id of the smoke-test client (the deploy workflow's SMOKE_CLIENT_ID); null when the registrations are made by hand."
  value       = one(module.entra_apps[*].smoke_client_id)
}

output "smoke_token_url" {
  description = "Token endpoint for the smoke test (SMOKE_TOKEN_URL); null when the registrations are made by hand."
  value       = one(module.entra_apps[*].token_url)
}

output "smoke_scope" {
  description = "Scope of the smoke test's client-credentials request (SMOKE_SCOPE); null when the registrations are made by hand."
  value       = one(module.entra_apps[*].smoke_scope)
}

output "api_app_role_ids" {
  description = "App role value => id on the API registration (assign `admin` to quiz administrators); empty when the registrations are made by hand."
  value       = one(module.entra_apps[*].app_role_ids)
}

output "api_service_principal_object_id" {
  description = "Object id of the API's service principal in the External ID tenant (resource of app role assignments); null when made by hand."
  value       = one(module.entra_apps[*].api_service_principal_object_id)
}

# ---- Local containers (scripts/compose-env.sh) ----

output "app_settings" {
  description = "The qotd application settings both hostings get (locals.tf app_settings), for compose.yaml through scripts/compose-env.sh. Holds no secret: identities, not keys (the optional OpenAI key stays a Key Vault reference outside this map)."
  value       = local.app_settings
}
