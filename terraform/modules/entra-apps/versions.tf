terraform {
  required_providers {
    # The caller passes the provider configured for the External ID tenant
    # (providers = { azuread = azuread.external }).
    azuread = {
      source  = "hashicorp/azuread"
      version = ">= 3.0, < 4.0"
    }
    random = {
      source  = "hashicorp/random"
      version = "~> 3.6"
    }
  }
}
