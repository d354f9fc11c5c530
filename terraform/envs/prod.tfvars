# Production: warm HTTP instance, provisioned database, geo-redundant backups, long retention.

environment = "prod"
location    = "swedencentral"

function_hosting            = "flex_consumption"
flex_always_ready           = { http = 1 }
flex_maximum_instance_count = 40

# Sign-in: the External ID tenant (created by hand once, docs/deploy.md). With its id and
# subdomain set, Terraform creates the API, player page and smoke-test registrations there
# and derives QOTD_AUTH_*/QOTD_WEB_*; leave them null and set auth_metadata_url/auth_audience
# instead to keep registrations made by hand.
entra_external_tenant_id = null # "<external-tenant-id>"
entra_external_subdomain = null # "<subdomain>" of <subdomain>.ciamlogin.com
auth_metadata_url        = "https://<tenant-subdomain>.ciamlogin.com/<tenant-id>/v2.0/.well-known/openid-configuration"
auth_audience            = "<api-app-client-id>"
auth_subject_claim       = "oid"

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

# Azure OpenAI model: one (name, version) pair per environment. GA and not deprecated on
# 2026-11-30 per the Microsoft Learn model retirement schedule (retires 2027-09-21); the plan
# fails early if the region does not offer it as GlobalStandard (docs/deploy.md).
openai_model_name    = "gpt-5.4-mini"
openai_model_version = "2026-03-17"

alert_servicebus_backlog_threshold = 200

tags = {
  cost-center = "qotd-prod"
}

# DispatchOutbox safety-net timer (QOTD_DISPATCH_SCHEDULE); events are published in-process
# right after each commit, the timer only catches what a dead instance left behind. Here:
# provisioned database (never pauses): publish stragglers within a minute.
dispatch_schedule = "0 */1 * * * *"
