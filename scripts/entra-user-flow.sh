#!/usr/bin/env bash
# Creates the sign-up/sign-in user flow of the External ID tenant and links the player page's
# app registration to it, through Microsoft Graph (v1.0 identity/authenticationEventsFlows):
# the azuread Terraform provider has no resource for External ID user flows.
#
# Idempotent: a flow with the same display name is reused, and an app already linked to it is
# left alone. An app can be linked to one user flow only.
#
# Run it signed in to the External ID tenant as an External ID User Flow Administrator (or an
# identity with the Graph permission EventListener.ReadWrite.All):
#   az login --tenant <external-tenant-id> --allow-no-subscriptions
#   scripts/entra-user-flow.sh "$(terraform -chdir=terraform output -raw web_client_id)"
#
# Usage: scripts/entra-user-flow.sh <app-client-id>... [--name "<display name>"]
#   default name: "qotd sign-up and sign-in"; identity provider: email with password;
#   collected attributes: email (the sign-in name) and displayName.
set -euo pipefail

graph=https://graph.microsoft.com/v1.0
name="qotd sign-up and sign-in"
apps=()
while (($# > 0)); do
  case "$1" in
    --name)
      name=${2:?--name needs a value}
      shift
      ;;
    -h | --help)
      sed -n '2,18p' "$0"
      exit 0
      ;;
    *) apps+=("$1") ;;
  esac
  shift
done
guid='^[0-9a-fA-F]{8}-([0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}$'
if ((${#apps[@]} == 0)); then
  echo "usage: $0 <app-client-id>... [--name \"<display name>\"]" >&2
  exit 2
fi
for app in "${apps[@]}"; do
  if [[ ! "$app" =~ $guid ]]; then
    echo "entra-user-flow.sh: '$app' is not an application (client) id" >&2
    exit 2
  fi
done
if [[ "$name" == *"'"* || "$name" == *'"'* ]]; then
  echo "entra-user-flow.sh: the flow name may not contain quotes" >&2
  exit 2
fi

body=$(mktemp)
trap 'rm -f "$body"' EXIT

flow_id=$(az rest --method get --url "$graph/identity/authenticationEventsFlows" \
  --query "value[?displayName=='$name'].id | [0]" --output tsv)
if [[ -n "$flow_id" ]]; then
  echo "entra-user-flow.sh: user flow '$name' exists ($flow_id)"
else
  python3 - "$name" > "$body" << 'PY'
import json, sys
print(json.dumps({
    "@odata.type": "#microsoft.graph.externalUsersSelfServiceSignUpEventsFlow",
    "displayName": sys.argv[1],
    "onInteractiveAuthFlowStart": {
        "@odata.type": "#microsoft.graph.onInteractiveAuthFlowStartExternalUsersSelfServiceSignUp",
        "isSignUpAllowed": True,
    },
    "onAuthenticationMethodLoadStart": {
        "@odata.type": "#microsoft.graph.onAuthenticationMethodLoadStartExternalUsersSelfServiceSignUp",
        "identityProviders": [{"id": "EmailPassword-OAUTH"}],
    },
    "onAttributeCollection": {
        "@odata.type": "#microsoft.graph.onAttributeCollectionExternalUsersSelfServiceSignUp",
        "attributes": [
            {"id": "email", "displayName": "Email Address", "description": "Email address of the player",
             "userFlowAttributeType": "builtIn", "dataType": "string"},
            {"id": "displayName", "displayName": "Display Name", "description": "Name shown on the leaderboards",
             "userFlowAttributeType": "builtIn", "dataType": "string"},
        ],
        "attributeCollectionPage": {"views": [{"inputs": [
            {"attribute": "email", "label": "Email Address", "inputType": "text", "hidden": True,
             "editable": False, "writeToDirectory": True, "required": True},
            {"attribute": "displayName", "label": "Display Name", "inputType": "text", "hidden": False,
             "editable": True, "writeToDirectory": True, "required": True},
        ]}]},
    },
}))
PY
  flow_id=$(az rest --method post --url "$graph/identity/authenticationEventsFlows" \
    --headers "Content-Type=application/json" --body "@$body" --query id --output tsv)
  echo "entra-user-flow.sh: created user flow '$name' ($flow_id)"
fi

linked=$(az rest --method get \
  --url "$graph/identity/authenticationEventsFlows/$flow_id/conditions/applications/includeApplications" \
  --query "value[].appId" --output tsv)
for app in "${apps[@]}"; do
  if grep -qix -- "$app" <<< "$linked"; then
    echo "entra-user-flow.sh: $app already uses '$name'"
    continue
  fi
  printf '{"@odata.type": "#microsoft.graph.authenticationConditionApplication", "appId": "%s"}\n' "$app" > "$body"
  az rest --method post \
    --url "$graph/identity/authenticationEventsFlows/$flow_id/conditions/applications/includeApplications" \
    --headers "Content-Type=application/json" --body "@$body" --output none
  echo "entra-user-flow.sh: linked $app to '$name'"
done
