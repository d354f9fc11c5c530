# Development: smallest sizes, scale to zero, short retention.
# Replace the placeholders (<...>) with your tenant's values; docs/deploy.md explains each.

environment = "dev"
location    = "swedencentral"

function_hosting  = "flex_consumption"
flex_always_ready = {}

# External ID (CIAM) tenant and API app registration (docs/deploy.md, one-time setup).
auth_metadata_url = "https://<tenant-subdomain>.ciamlogin.com/<tenant-id>/v2.0/.well-known/openid-configuration"
auth_audience     = "<api-app-client-id>"

# Entra group administering Azure SQL; the deployment identity is a member.
sql_entra_admin_login     = "qotd-sql-admins-dev"
sql_entra_admin_object_id = null # looked up by name; set the object id to skip the Graph lookup

alert_email_addresses = ["qotd-dev-alerts@example.com"]

sql_sku_name                  = "GP_S_Gen5_1"
sql_auto_pause_delay_minutes  = 60
sql_backup_storage_redundancy = "Local"

key_vault_soft_delete_retention_days = 7
log_retention_days                   = 30
log_daily_quota_gb                   = 1

openai_capacity = 10

tags = {
  cost-center = "qotd-dev"
}
