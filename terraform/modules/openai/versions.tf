terraform {
  required_providers {
    azurerm = {
      source  = "hashicorp/azurerm"
      version = ">= 4.69, < 5.0"
    }
    # The plan-time model check reads the regional model catalog, which azurerm has no data
    # source for.
    azapi = {
      source  = "Azure/azapi"
      version = ">= 2.2, < 3.0"
    }
  }
}
