# Provider and Terraform version pins for the qotd root module.
#
# Terraform 1.11 is the floor because the optional OpenAI key secret uses a write-only argument
# (`value_wo`), which keeps the key out of the state file.
terraform {
  required_version = ">= 1.11, < 2.0"

  required_providers {
    azurerm = {
      source = "hashicorp/azurerm"
      # 4.40 is the oldest 4.x release checked against this code (runtime `custom` on Flex,
      # `rbac_authorization_enabled`, `storage_account_id` on containers); stay on major 4.
      version = ">= 4.40, < 5.0"
    }
    azuread = {
      source  = "hashicorp/azuread"
      version = "~> 3.0"
    }
    random = {
      source  = "hashicorp/random"
      version = "~> 3.6"
    }
  }
}
