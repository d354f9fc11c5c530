# Staging: production-shaped, smaller capacity. Deployed after manual approval.

environment = "staging"
location    = "swedencentral"

function_hosting            = "flex_consumption"
flex_always_ready           = {}
flex_maximum_instance_count = 40

auth_metadata_url = "https://<tenant-subdomain>.ciamlogin.com/<tenant-id>/v2.0/.well-known/openid-configuration"
auth_audience     = "<api-app-client-id>"

sql_entra_admin_login     = "qotd-sql-admins-staging"
sql_entra_admin_object_id = null

alert_email_addresses = ["qotd-staging-alerts@example.com"]

sql_sku_name                  = "GP_S_Gen5_1"
sql_auto_pause_delay_minutes  = 60
sql_backup_storage_redundancy = "Zone"

key_vault_soft_delete_retention_days = 30
log_retention_days                   = 30

openai_capacity = 20

tags = {
  cost-center = "qotd-staging"
}
