output "environment_id" {
  description = "Container Apps environment resource id."
  value       = azurerm_container_app_environment.this.id
}

output "environment_name" {
  description = "Container Apps environment name."
  value       = azurerm_container_app_environment.this.name
}

output "default_domain" {
  description = "Default domain of the environment's apps."
  value       = azurerm_container_app_environment.this.default_domain
}

output "registry_id" {
  description = "Registry resource id."
  value       = azurerm_container_registry.this.id
}

output "registry_name" {
  description = "Registry name."
  value       = azurerm_container_registry.this.name
}

output "registry_login_server" {
  description = "Registry login server; available once the pull roles exist, so apps created from it can pull."
  value       = azurerm_container_registry.this.login_server
  depends_on  = [azurerm_role_assignment.acr_pull]
}

output "migration_job_name" {
  description = "Name of the migration job."
  value       = azurerm_container_app_job.migrate.name
}

output "migration_job_id" {
  description = "Resource id of the migration job."
  value       = azurerm_container_app_job.migrate.id
}

output "app_urls" {
  description = "App key => https URL of apps with ingress."
  value = {
    for key, app in azurerm_container_app.app : key => "https://${app.ingress[0].fqdn}"
    if length(app.ingress) > 0
  }
}
