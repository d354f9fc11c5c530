# The alerts qotd is operated by. Service Bus conditions are platform metrics on the namespace;
# the Functions conditions are log queries on the Application Insights component (the host
# records every invocation as a request and the handler's stdout as traces).

locals {
  servicebus_alerts = var.servicebus_alerts_enabled ? {
    deadletter = {
      description = "Messages were dead-lettered on a topic's subscriptions (max delivery count reached or TTL expired). Inspect the DLQ; the consumer could not process them."
      metric      = "DeadletteredMessages"
      threshold   = 0
      severity    = 2
    }
    backlog = {
      description = "Active messages are piling up on a topic: consumers are failing, throttled or not scaling."
      metric      = "ActiveMessages"
      threshold   = var.servicebus_backlog_threshold
      severity    = 3
    }
  } : {}
}

resource "azurerm_monitor_metric_alert" "servicebus" {
  for_each = local.servicebus_alerts

  name                = "${var.application_insights_name}-sb-${each.key}"
  resource_group_name = var.resource_group_name
  tags                = var.tags
  scopes              = [var.servicebus_namespace_id]
  description         = each.value.description
  severity            = each.value.severity
  frequency           = "PT5M"
  window_size         = "PT15M"

  criteria {
    metric_namespace = "Microsoft.ServiceBus/namespaces"
    metric_name      = each.value.metric
    aggregation      = "Average"
    operator         = "GreaterThan"
    threshold        = each.value.threshold

    # One time series per entity, so the alert names the topic.
    dimension {
      name     = "EntityName"
      operator = "Include"
      values   = ["*"]
    }
  }

  action {
    action_group_id = azurerm_monitor_action_group.this.id
  }
}

resource "azurerm_monitor_scheduled_query_rules_alert_v2" "failed_executions" {
  name                = "${var.application_insights_name}-failed-executions"
  location            = var.location
  resource_group_name = var.resource_group_name
  tags                = var.tags
  description         = "Function executions failed (timer, Service Bus or HTTP 5xx). HTTP 4xx answers are client errors and are not counted."
  severity            = 2
  scopes              = [azurerm_application_insights.this.id]

  evaluation_frequency = "PT5M"
  window_duration      = "PT15M"

  criteria {
    query                   = <<-KQL
      requests
      | where success == false
      | extend code = toint(resultCode)
      | where isnull(code) or code < 400 or code >= 500
    KQL
    time_aggregation_method = "Count"
    operator                = "GreaterThanOrEqual"
    threshold               = var.failed_executions_threshold
  }

  action {
    action_groups = [azurerm_monitor_action_group.this.id]
  }
}

resource "azurerm_monitor_scheduled_query_rules_alert_v2" "http_5xx_rate" {
  name                = "${var.application_insights_name}-http-5xx-rate"
  location            = var.location
  resource_group_name = var.resource_group_name
  tags                = var.tags
  description         = "More than ${var.http_5xx_rate_percent_threshold}% of API requests were answered with a 5xx status."
  severity            = 1
  scopes              = [azurerm_application_insights.this.id]

  evaluation_frequency = "PT5M"
  window_duration      = "PT15M"

  criteria {
    query                   = <<-KQL
      requests
      | where isnotempty(url)
      | summarize total = count(), server_errors = countif(toint(resultCode) >= 500)
      | where total >= ${var.http_5xx_rate_minimum_requests}
      | extend error_rate_percent = 100.0 * server_errors / total
    KQL
    time_aggregation_method = "Maximum"
    metric_measure_column   = "error_rate_percent"
    operator                = "GreaterThan"
    threshold               = var.http_5xx_rate_percent_threshold
  }

  action {
    action_groups = [azurerm_monitor_action_group.this.id]
  }
}

resource "azurerm_monitor_scheduled_query_rules_alert_v2" "quiz_bank_fallback" {
  count = var.quiz_bank_fallback_alerts_enabled ? 1 : 0

  name                = "${var.application_insights_name}-quiz-bank-fallback"
  location            = var.location
  resource_group_name = var.resource_group_name
  tags                = var.tags
  description         = "Daily quiz generation fell back to the offline question bank: Azure OpenAI failed or returned an invalid quiz."
  severity            = 3
  scopes              = [azurerm_application_insights.this.id]

  evaluation_frequency = "PT15M"
  window_duration      = "PT15M"

  criteria {
    query                   = <<-KQL
      traces
      | where message contains "fell back to the bank"
    KQL
    time_aggregation_method = "Count"
    operator                = "GreaterThan"
    threshold               = 0
  }

  action {
    action_groups = [azurerm_monitor_action_group.this.id]
  }
}
