#!/usr/bin/env bash
# Creates (or repairs) the Azure SQL database users of qotd's managed identities and grants
# their roles. Azure RBAC cannot grant inside a database, so this runs after every
# `terraform apply`; it is idempotent.
#
#   app identity       db_datareader, db_datawriter
#   migration identity db_datareader, db_datawriter, db_ddladmin
#
# Users are created WITH SID = <client id>, TYPE = E: the server needs no Microsoft Graph
# permission to resolve them, and a recreated identity (new client id) is detected and its
# user recreated.
#
# Run it as a member of the SQL Entra admin group (var.sql_entra_admin_login), logged in with
# the Azure CLI (`az login`, or azure/login in the pipeline). Needs go-sqlcmd (`sqlcmd` with
# --authentication-method; https://github.com/microsoft/go-sqlcmd).
#
# Inputs (environment), defaulting to `terraform -chdir=terraform output`:
#   SQL_SERVER_FQDN, SQL_DATABASE, APP_IDENTITY_NAME, APP_CLIENT_ID,
#   MIGRATE_IDENTITY_NAME, MIGRATE_CLIENT_ID
# Options:
#   --open-firewall   add a temporary firewall rule for this machine's public IP (removed on
#                     exit); needs SQL_RESOURCE_GROUP and SQL_SERVER_NAME (or terraform outputs)
set -euo pipefail

cd "$(dirname "$0")/.."

open_firewall=false
for arg in "$@"; do
  case "$arg" in
    --open-firewall) open_firewall=true ;;
    *)
      echo "sql-grant-identities.sh: unknown argument '$arg'" >&2
      exit 2
      ;;
  esac
done

tf_output() {
  terraform -chdir=terraform output -raw "$1"
}

SQL_SERVER_FQDN=${SQL_SERVER_FQDN:-$(tf_output sql_server_fqdn)}
SQL_DATABASE=${SQL_DATABASE:-$(tf_output sql_database_name)}
APP_IDENTITY_NAME=${APP_IDENTITY_NAME:-$(tf_output identity_name)}
APP_CLIENT_ID=${APP_CLIENT_ID:-$(tf_output identity_client_id)}
MIGRATE_IDENTITY_NAME=${MIGRATE_IDENTITY_NAME:-$(tf_output migration_identity_name)}
MIGRATE_CLIENT_ID=${MIGRATE_CLIENT_ID:-$(tf_output migration_identity_client_id)}

# The values are spliced into T-SQL: accept only the shapes Azure produces.
guid='^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$'
name='^[A-Za-z0-9][A-Za-z0-9_-]{0,127}$'
for pair in "APP_CLIENT_ID:$APP_CLIENT_ID:$guid" "MIGRATE_CLIENT_ID:$MIGRATE_CLIENT_ID:$guid" \
  "APP_IDENTITY_NAME:$APP_IDENTITY_NAME:$name" "MIGRATE_IDENTITY_NAME:$MIGRATE_IDENTITY_NAME:$name" \
  "SQL_DATABASE:$SQL_DATABASE:$name"; do
  IFS=: read -r var value pattern <<< "$pair"
  if [[ ! "$value" =~ $pattern ]]; then
    echo "sql-grant-identities.sh: $var='$value' is not a valid value" >&2
    exit 1
  fi
done

if ! command -v sqlcmd > /dev/null; then
  echo "sql-grant-identities.sh: sqlcmd (go-sqlcmd) is not installed" >&2
  exit 1
fi

script=$(mktemp)
rule=""
cleanup() {
  rm -f "$script"
  if [[ -n "$rule" ]]; then
    az sql server firewall-rule delete -g "$SQL_RESOURCE_GROUP" -s "$SQL_SERVER_NAME" -n "$rule" --output none || true
  fi
}
trap cleanup EXIT

if [[ "$open_firewall" == true ]]; then
  SQL_RESOURCE_GROUP=${SQL_RESOURCE_GROUP:-$(tf_output resource_group_name)}
  SQL_SERVER_NAME=${SQL_SERVER_NAME:-$(tf_output sql_server_name)}
  my_ip=$(curl -fsS https://api.ipify.org)
  echo "sql-grant-identities.sh: temporary firewall rule for $my_ip"
  rule="deploy-$(date +%s)"
  az sql server firewall-rule create -g "$SQL_RESOURCE_GROUP" -s "$SQL_SERVER_NAME" -n "$rule" \
    --start-ip-address "$my_ip" --end-ip-address "$my_ip" --output none
  # Firewall changes take a few seconds to reach the gateway.
  sleep 20
fi

user_sql() {
  local user=$1 client_id=$2
  shift 2
  cat << SQL
-- ${user}
SET @sid = CAST(CAST('${client_id}' AS uniqueidentifier) AS varbinary(16));
IF EXISTS (SELECT 1 FROM sys.database_principals WHERE name = N'${user}' AND sid <> @sid)
BEGIN
  PRINT 'recreating ${user}: its identity was recreated (new client id)';
  DROP USER [${user}];
END;
IF NOT EXISTS (SELECT 1 FROM sys.database_principals WHERE name = N'${user}')
BEGIN
  SET @stmt = N'CREATE USER [${user}] WITH SID = ' + CONVERT(nvarchar(64), @sid, 1) + N', TYPE = E;';
  EXEC sp_executesql @stmt;
  PRINT 'created user ${user}';
END;
SQL
  local role
  for role in "$@"; do
    echo "ALTER ROLE ${role} ADD MEMBER [${user}];"
  done
}

{
  echo "SET NOCOUNT ON;"
  echo "DECLARE @sid varbinary(16), @stmt nvarchar(max);"
  user_sql "$APP_IDENTITY_NAME" "$APP_CLIENT_ID" db_datareader db_datawriter
  user_sql "$MIGRATE_IDENTITY_NAME" "$MIGRATE_CLIENT_ID" db_datareader db_datawriter db_ddladmin
} > "$script"

echo "sql-grant-identities.sh: granting on $SQL_SERVER_FQDN/$SQL_DATABASE"
sqlcmd -S "tcp:${SQL_SERVER_FQDN},1433" -d "$SQL_DATABASE" \
  --authentication-method ActiveDirectoryDefault -b -i "$script"
echo "sql-grant-identities.sh: done"
