# Provider and Terraform version pins for the qotd root module.
#
# Terraform 1.11 is the floor because the optional OpenAI key secret uses a write-only argument
# (`value_wo`), which keeps the key out of the state file (cross-variable validation, used by
# the auth variables, needs 1.9).
terraform {
  required_version = ">= 1.11, < 2.0"

  required_providers {
    azurerm = {
      source = "hashicorp/azurerm"
      # The floor is the newest feature this code uses: `identity` on a Container Apps
      # custom_scale_rule (4.69). Older ones it relies on: Flex `http_concurrency` (4.46),
      # `rbac_authorization_enabled` on Key Vault (4.42). Checked offline against 4.81.
      version = ">= 4.69, < 5.0"
    }
    azuread = {
      source = "hashicorp/azuread"
      # Two configurations: the default one (workforce tenant: SQL admin group lookup) and
      # `azuread.external` (the External ID tenant: app registrations, modules/entra-apps).
      # 3.x for `azuread_application_identifier_uri` and `client_id` naming.
      version = ">= 3.0, < 4.0"
    }
    azapi = {
      source = "Azure/azapi"
      # Plan-time read of the regional model catalog (modules/openai); 2.x returns `output`
      # as an HCL object and accepts JMESPath in `response_export_values`.
      version = ">= 2.2, < 3.0"
    }
    random = {
      source  = "hashicorp/random"
      version = "~> 3.6"
    }
  }
}
