# User-assigned managed identities. They outlive the compute that uses them, so role
# assignments and database users survive a Function App being recreated or moved between
# hosting options.

resource "azurerm_user_assigned_identity" "this" {
  for_each = var.identities

  name                = each.value
  location            = var.location
  resource_group_name = var.resource_group_name
  tags                = var.tags
}
