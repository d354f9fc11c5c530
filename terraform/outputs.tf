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
