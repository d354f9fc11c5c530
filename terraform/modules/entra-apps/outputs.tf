output "api_client_id" {
  description = "Client id of the API registration (the `aud` of v2 access tokens)."
  value       = azuread_application.api.client_id
}

output "api_identifier_uri" {
  description = "Application ID URI of the API."
  value       = azuread_application_identifier_uri.api.identifier_uri
}

output "api_scope" {
  description = "Full delegated scope the player page requests, <App ID URI>/<scope>."
  value       = "${azuread_application_identifier_uri.api.identifier_uri}/${var.player_scope}"
}

output "app_role_ids" {
  description = "App role value => id on the API (for assigning `admin` to people)."
  value       = { for k, v in random_uuid.role : k => v.result }
}

output "api_service_principal_object_id" {
  description = "Object id of the API's service principal (resource of app role assignments)."
  value       = azuread_service_principal.api.object_id
}

output "web_client_id" {
  description = "Client id of the player page's SPA registration (QOTD_WEB_CLIENT_ID)."
  value       = azuread_application.web.client_id
}

output "smoke_client_id" {
  description = "Client id of the smoke-test client (SMOKE_CLIENT_ID)."
  value       = azuread_application.smoke.client_id
}

output "authority" {
  description = "OIDC authority of the tenant, https://<subdomain>.ciamlogin.com/<tenant-id> (QOTD_WEB_AUTHORITY)."
  value       = local.ciam_host
}

output "metadata_url" {
  description = "OIDC discovery document of the tenant's v2 endpoint (QOTD_AUTH_METADATA_URL)."
  value       = "${local.ciam_host}/v2.0/.well-known/openid-configuration"
}

output "token_url" {
  description = "Token endpoint (SMOKE_TOKEN_URL)."
  value       = "${local.ciam_host}/oauth2/v2.0/token"
}

output "smoke_scope" {
  description = "Scope of the smoke test's client-credentials request (SMOKE_SCOPE)."
  value       = "${azuread_application_identifier_uri.api.identifier_uri}/.default"
}
