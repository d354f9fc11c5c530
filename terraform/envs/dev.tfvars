# Development: smallest sizes, scale to zero, short retention.
# Replace the placeholders (<...>) with your tenant's values; docs/deploy.md explains each.

environment = "dev"
location    = "swedencentral"

function_hosting  = "flex_consumption"
flex_always_ready = {}

# Sign-in: the External ID tenant (created by hand once, docs/deploy.md). With its id and
# subdomain set, Terraform creates the API, player page and smoke-test registrations there
# and derives QOTD_AUTH_*/QOTD_WEB_*; leave them null and set auth_metadata_url/auth_audience
# instead to keep registrations made by hand.
entra_external_tenant_id = null # "<external-tenant-id>"
entra_external_subdomain = null # "<subdomain>" of <subdomain>.ciamlogin.com
auth_metadata_url        = "https://<tenant-subdomain>.ciamlogin.com/<tenant-id>/v2.0/.well-known/openid-configuration"
auth_audience            = "<api-app-client-id>"
auth_subject_claim       = "oid"
web_local_redirect_uris  = ["http://127.0.0.1:7071/"]

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

# Azure OpenAI model: one (name, version) pair per environment. GA and not deprecated on
# 2026-11-30 per the Microsoft Learn model retirement schedule (retires 2027-09-21); the plan
# fails early if the region does not offer it as GlobalStandard (docs/deploy.md).
openai_model_name    = "gpt-5.4-mini"
openai_model_version = "2026-03-17"

tags = {
  cost-center = "qotd-dev"
}

# DispatchOutbox safety-net timer (QOTD_DISPATCH_SCHEDULE); events are published in-process
# right after each commit, the timer only catches what a dead instance left behind. Here:
# serverless database pausing after 60 idle minutes: keep the safety net's period longer.
dispatch_schedule = "0 0 */2 * * *"
