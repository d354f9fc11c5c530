# The app registrations qotd needs in a Microsoft Entra External ID (customer) tenant:
#
#   <prefix>-api    the API: App ID URI, delegated scope `quiz.play` (players), app roles
#                   `admin` (users and apps) and `quiz.service` (apps only), v2 access tokens
#   <prefix>-web    the player page: SPA platform with the app's /, /play (+ local) redirect
#                   URIs, PKCE auth code flow, consented to quiz.play + openid/offline_access
#   <prefix>-smoke  the pipeline's smoke-test client: app role quiz.service, a GitHub OIDC
#                   federated credential per deploy environment, no secret
#
# The tenant itself and its sign-up/sign-in user flow are not here: the azuread provider has
# no resource for External ID user flows (scripts/entra-user-flow.sh calls Microsoft Graph).

locals {
  graph_app_id = "00000003-0000-0000-c000-000000000000"
  ciam_host    = "https://${var.tenant_subdomain}.ciamlogin.com/${var.tenant_id}"

  app_roles = {
    admin = {
      display_name         = "Quiz administrator"
      description          = "Generates and replaces quizzes and reads question reports."
      allowed_member_types = ["User", "Application"]
    }
    "quiz.service" = {
      display_name         = "Quiz service client"
      description          = "App-only access to the quiz API (service clients, the deployment smoke test)."
      allowed_member_types = ["Application"]
    }
  }

  web_redirect_uris = distinct(concat(
    # /play/ is the page's redirectPath (GET /api/web-config); Entra matches redirect URIs exactly.
    ["${trimsuffix(var.app_url, "/")}/", "${trimsuffix(var.app_url, "/")}/play", "${trimsuffix(var.app_url, "/")}/play/"],
    var.local_redirect_uris,
  ))

  api_identifier_uri = coalesce(var.api_identifier_uri, "api://${azuread_application.api.client_id}")
}

# Stable ids for the scope and roles (Entra requires the caller to choose them).
resource "random_uuid" "scope" {}

resource "random_uuid" "role" {
  for_each = local.app_roles
}

# ------------------------------------------------------------------------------------------
# API
# ------------------------------------------------------------------------------------------

resource "azuread_application" "api" {
  display_name     = "${var.name_prefix}-api"
  sign_in_audience = "AzureADMyOrg"
  notes            = "qotd API (Terraform: modules/entra-apps). Tokens: v2, aud = this client id."

  api {
    # v2 tokens: issuer https://<tenant-id>.ciamlogin.com/<tenant-id>/v2.0, aud = client id.
    requested_access_token_version = 2

    oauth2_permission_scope {
      id                         = random_uuid.scope.result
      value                      = var.player_scope
      type                       = "User"
      enabled                    = true
      admin_consent_display_name = "Play the daily quiz"
      admin_consent_description  = "Lets the app play the quiz, read leaderboards and manage the player's own profile on behalf of the signed-in player."
      user_consent_display_name  = "Play the daily quiz"
      user_consent_description   = "Play the quiz and see leaderboards as you."
    }
  }

  dynamic "app_role" {
    for_each = local.app_roles
    content {
      id                   = random_uuid.role[app_role.key].result
      value                = app_role.key
      display_name         = app_role.value.display_name
      description          = app_role.value.description
      allowed_member_types = app_role.value.allowed_member_types
      enabled              = true
    }
  }

  lifecycle {
    # The App ID URI is set by azuread_application_identifier_uri.api (it needs the client id).
    ignore_changes = [identifier_uris]
  }
}

resource "azuread_application_identifier_uri" "api" {
  application_id = azuread_application.api.id
  identifier_uri = local.api_identifier_uri
}

resource "azuread_service_principal" "api" {
  client_id = azuread_application.api.client_id
  # See var.api_app_role_assignment_required: players are self-service sign-ups.
  app_role_assignment_required = var.api_app_role_assignment_required
}

# ------------------------------------------------------------------------------------------
# Player page (SPA, authorization code + PKCE)
# ------------------------------------------------------------------------------------------

data "azuread_service_principal" "graph" {
  client_id = local.graph_app_id
}

resource "azuread_application" "web" {
  display_name     = "${var.name_prefix}-web"
  sign_in_audience = "AzureADMyOrg"
  notes            = "qotd player page (Terraform: modules/entra-apps)."

  single_page_application {
    redirect_uris = local.web_redirect_uris
  }

  required_resource_access {
    resource_app_id = azuread_application.api.client_id
    resource_access {
      id   = random_uuid.scope.result
      type = "Scope"
    }
  }

  required_resource_access {
    resource_app_id = local.graph_app_id
    resource_access {
      id   = data.azuread_service_principal.graph.oauth2_permission_scope_ids["openid"]
      type = "Scope"
    }
    resource_access {
      id   = data.azuread_service_principal.graph.oauth2_permission_scope_ids["offline_access"]
      type = "Scope"
    }
  }
}

resource "azuread_service_principal" "web" {
  client_id = azuread_application.web.client_id
}

# Customers cannot consent for themselves in an external tenant: tenant-wide (admin) consent.
resource "azuread_service_principal_delegated_permission_grant" "web_api" {
  service_principal_object_id          = azuread_service_principal.web.object_id
  resource_service_principal_object_id = azuread_service_principal.api.object_id
  claim_values                         = [var.player_scope]
}

resource "azuread_service_principal_delegated_permission_grant" "web_graph" {
  service_principal_object_id          = azuread_service_principal.web.object_id
  resource_service_principal_object_id = data.azuread_service_principal.graph.object_id
  claim_values                         = ["openid", "offline_access"]
}

# ------------------------------------------------------------------------------------------
# Smoke-test client (client credentials with a GitHub OIDC assertion, no secret)
# ------------------------------------------------------------------------------------------

resource "azuread_application" "smoke" {
  display_name     = "${var.name_prefix}-smoke"
  sign_in_audience = "AzureADMyOrg"
  notes            = "qotd deployment smoke test (Terraform: modules/entra-apps). Federated credentials only."

  required_resource_access {
    resource_app_id = azuread_application.api.client_id
    resource_access {
      id   = random_uuid.role["quiz.service"].result
      type = "Role"
    }
  }
}

resource "azuread_service_principal" "smoke" {
  client_id = azuread_application.smoke.client_id
}

resource "azuread_app_role_assignment" "smoke_service" {
  principal_object_id = azuread_service_principal.smoke.object_id
  resource_object_id  = azuread_service_principal.api.object_id
  app_role_id         = random_uuid.role["quiz.service"].result
}

resource "azuread_application_federated_identity_credential" "smoke_github" {
  #checkov:skip=CKV_AZURE_249:The subject is always repo:<owner>/<repo>:environment:<env>, no wildcard or abusable claim; checkov cannot resolve the variables it is built from, and github_repository is validated as owner/repo.
  for_each = toset(var.github_repository == null ? [] : var.github_environments)

  application_id = azuread_application.smoke.id
  display_name   = "github-${replace(var.github_repository, "/", "-")}-${each.value}"
  description    = "GitHub Actions deploy job, environment ${each.value}"
  issuer         = "https://token.actions.githubusercontent.com"
  subject        = "repo:${var.github_repository}:environment:${each.value}"
  audiences      = ["api://AzureADTokenExchange"]
}
