output "resource_id" {
  description = "Namespace resource id."
  value       = azurerm_servicebus_namespace.this.id
}

output "name" {
  description = "Namespace name."
  value       = azurerm_servicebus_namespace.this.name
}

output "fqdn" {
  description = "Namespace host name, the value of <connection>__fullyQualifiedNamespace."
  value       = "${azurerm_servicebus_namespace.this.name}.servicebus.windows.net"
}

output "topic_ids" {
  description = "Topic name => resource id."
  value       = { for name, topic in azurerm_servicebus_topic.this : name => topic.id }
}

output "subscription_ids" {
  description = "\"<topic>/<subscription>\" => resource id."
  value       = { for key, sub in azurerm_servicebus_subscription.this : key => sub.id }
}
