output "server_id" {
  description = "Logical server resource id."
  value       = azurerm_mssql_server.this.id
}

output "server_name" {
  description = "Logical server name."
  value       = azurerm_mssql_server.this.name
}

output "server_fqdn" {
  description = "Server host name, <name>.database.windows.net."
  value       = azurerm_mssql_server.this.fully_qualified_domain_name
}

output "database_id" {
  description = "Database resource id."
  value       = azurerm_mssql_database.this.id
}

output "database_name" {
  description = "Database name."
  value       = azurerm_mssql_database.this.name
}
