# Production: warm HTTP instance, provisioned database, geo-redundant backups, long retention.

environment = "prod"
location    = "swedencentral"

function_hosting            = "flex_consumption"
flex_always_ready           = { http = 1 }
flex_maximum_instance_count = 40

auth_metadata_url = "https://<tenant-subdomain>.ciamlogin.com/<tenant-id>/v2.0/.well-known/openid-configuration"
auth_audience     = "<api-app-client-id>"

sql_entra_admin_login     = "qotd-sql-admins-prod"
sql_entra_admin_object_id = null

alert_email_addresses = ["qotd-oncall@example.com"]

sql_sku_name                  = "GP_Gen5_2"
sql_zone_redundant            = true
sql_backup_storage_redundancy = "GeoZone"
sql_short_term_retention_days = 35

servicebus_grant_owner_for_scaling = true

key_vault_soft_delete_retention_days = 90
log_retention_days                   = 90

openai_capacity = 50

alert_servicebus_backlog_threshold = 200

tags = {
  cost-center = "qotd-prod"
}
