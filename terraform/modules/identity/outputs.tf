output "identities" {
  description = "Identity key => { id, name, client_id, principal_id }."
  value = {
    for key, identity in azurerm_user_assigned_identity.this : key => {
      id           = identity.id
      name         = identity.name
      client_id    = identity.client_id
      principal_id = identity.principal_id
    }
  }
}

output "resource_ids" {
  description = "Identity key => resource id."
  value       = { for key, identity in azurerm_user_assigned_identity.this : key => identity.id }
}
