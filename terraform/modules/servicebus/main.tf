# Service Bus namespace with the topics and subscriptions the app's function.json files name.
# The caller derives `topics` and `subscriptions` from those files; this module never names an
# entity itself. Shared-key (SAS) auth is off: every client uses Entra ID.

locals {
  # principal key x topic, principal key x subscription: static keys for for_each even while
  # principal ids are unknown at plan time.
  sender_assignments = {
    for pair in setproduct(keys(var.sender_principal_ids), sort(tolist(var.topics))) :
    "${pair[0]}|${pair[1]}" => { principal_id = var.sender_principal_ids[pair[0]], topic = pair[1] }
  }
  scale_monitor_assignments = {
    for pair in setproduct(keys(var.scale_monitor_principal_ids), sort(tolist(var.topics))) :
    "${pair[0]}|${pair[1]}" => { principal_id = var.scale_monitor_principal_ids[pair[0]], topic = pair[1] }
  }
  receiver_assignments = {
    for pair in setproduct(keys(var.receiver_principal_ids), sort(keys(var.subscriptions))) :
    "${pair[0]}|${pair[1]}" => { principal_id = var.receiver_principal_ids[pair[0]], subscription = pair[1] }
  }
}

resource "azurerm_servicebus_namespace" "this" {
  #checkov:skip=CKV_AZURE_201:Customer-managed keys are Premium-only; events carry quiz metadata and user ids, Microsoft-managed encryption is enough.
  #checkov:skip=CKV_AZURE_199:Double (infrastructure) encryption needs Premium with customer-managed keys; see CKV_AZURE_201.
  #checkov:skip=CKV_AZURE_204:The Function App reaches Service Bus over the public endpoint (no VNet integration in this baseline); SAS is disabled, so only Entra-authorised identities with topic/subscription roles get in.
  name                = var.name
  location            = var.location
  resource_group_name = var.resource_group_name
  tags                = var.tags

  sku                           = var.sku
  capacity                      = var.sku == "Premium" ? var.premium_capacity : 0
  premium_messaging_partitions  = var.sku == "Premium" ? 1 : 0
  local_auth_enabled            = false
  minimum_tls_version           = "1.2"
  public_network_access_enabled = var.public_network_access_enabled

  identity {
    type = "SystemAssigned"
  }
}

resource "azurerm_servicebus_topic" "this" {
  for_each = var.topics

  name         = each.value
  namespace_id = azurerm_servicebus_namespace.this.id

  # The outbox sends each event with MessageId = event id, so a re-send after a crash inside
  # this window is dropped by the broker (consumers are idempotent anyway).
  requires_duplicate_detection            = true
  duplicate_detection_history_time_window = var.duplicate_detection_history_time_window
  default_message_ttl                     = var.default_message_ttl
  max_size_in_megabytes                   = var.max_size_in_megabytes
  batched_operations_enabled              = true
}

resource "azurerm_servicebus_subscription" "this" {
  for_each = var.subscriptions

  name     = each.value.name
  topic_id = azurerm_servicebus_topic.this[each.value.topic].id

  max_delivery_count                        = var.max_delivery_count
  lock_duration                             = var.lock_duration
  default_message_ttl                       = var.default_message_ttl
  dead_lettering_on_message_expiration      = true
  dead_lettering_on_filter_evaluation_error = true
  batched_operations_enabled                = true
}

# Send: scoped to each topic, not the namespace.
resource "azurerm_role_assignment" "sender" {
  for_each = local.sender_assignments

  scope                = azurerm_servicebus_topic.this[each.value.topic].id
  role_definition_name = "Azure Service Bus Data Sender"
  principal_id         = each.value.principal_id
  principal_type       = "ServicePrincipal"
}

# Receive: scoped to each subscription.
resource "azurerm_role_assignment" "receiver" {
  for_each = local.receiver_assignments

  scope                = azurerm_servicebus_subscription.this[each.value.subscription].id
  role_definition_name = "Azure Service Bus Data Receiver"
  principal_id         = each.value.principal_id
  principal_type       = "ServicePrincipal"
}

# Reading runtime properties (message counts) needs the Manage claim, which Service Bus RBAC
# only grants through Data Owner. Scoped to each topic; optional (see README).
resource "azurerm_role_assignment" "scale_monitor" {
  for_each = local.scale_monitor_assignments

  scope                = azurerm_servicebus_topic.this[each.value.topic].id
  role_definition_name = "Azure Service Bus Data Owner"
  principal_id         = each.value.principal_id
  principal_type       = "ServicePrincipal"
}

resource "azurerm_monitor_diagnostic_setting" "namespace" {
  name                       = "to-log-analytics"
  target_resource_id         = azurerm_servicebus_namespace.this.id
  log_analytics_workspace_id = var.log_analytics_workspace_id

  enabled_log {
    category_group = "allLogs"
  }

  enabled_metric {
    category = "AllMetrics"
  }
}
