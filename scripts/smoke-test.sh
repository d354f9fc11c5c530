#!/usr/bin/env bash
# Smoke test of a deployed environment:
#   1. GET  <url>/api/health                     -> 200 (retried while the app starts)
#   2. GET  <url>/api/leaderboard (no token)     -> 401 (auth is on, dev issuer off)
#   3. GET  <url>/api/leaderboard (bearer token) -> 200 (one authenticated read)
#
# The token for step 3 comes from, in order:
#   SMOKE_BEARER_TOKEN  a token you obtained yourself (laptop use), or
#   SMOKE_CLIENT_ID + SMOKE_TOKEN_URL + SMOKE_SCOPE: client credentials of a test client app
#     registered in the External ID tenant, authenticated with the GitHub Actions OIDC token
#     (a federated credential on that app; no client secret anywhere).
# Without either, step 3 is skipped with a warning, or fails when SMOKE_REQUIRE_AUTH=true.
#
# Usage: scripts/smoke-test.sh <base-url>
set -euo pipefail

if [[ $# -ne 1 ]]; then
  echo "usage: $0 <base-url>" >&2
  exit 2
fi
base=${1%/}
attempts=${SMOKE_HEALTH_ATTEMPTS:-30}

status_of() {
  # prints the HTTP status of GET $1 (extra curl args follow)
  local url=$1
  shift
  curl -sS -o /dev/null -w '%{http_code}' --max-time 30 "$@" "$url" || echo "000"
}

echo "smoke-test.sh: GET $base/api/health"
code=000
for ((i = 1; i <= attempts; i++)); do
  code=$(status_of "$base/api/health")
  [[ "$code" == 200 ]] && break
  echo "   attempt $i: $code"
  sleep 10
done
if [[ "$code" != 200 ]]; then
  echo "smoke-test.sh: health check failed ($code)" >&2
  exit 1
fi
echo "   200"

echo "smoke-test.sh: GET $base/api/leaderboard without a token"
code=$(status_of "$base/api/leaderboard")
if [[ "$code" != 401 ]]; then
  echo "smoke-test.sh: expected 401 without a token, got $code" >&2
  exit 1
fi
echo "   401"

token=${SMOKE_BEARER_TOKEN:-}
if [[ -z "$token" && -n "${SMOKE_CLIENT_ID:-}" && -n "${SMOKE_TOKEN_URL:-}" && -n "${SMOKE_SCOPE:-}" ]]; then
  if [[ -z "${ACTIONS_ID_TOKEN_REQUEST_URL:-}" ]]; then
    echo "smoke-test.sh: SMOKE_CLIENT_ID needs a GitHub Actions OIDC token (permissions: id-token: write)" >&2
    exit 1
  fi
  assertion=$(curl -fsS -H "Authorization: bearer $ACTIONS_ID_TOKEN_REQUEST_TOKEN" \
    "$ACTIONS_ID_TOKEN_REQUEST_URL&audience=api://AzureADTokenExchange" |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["value"])')
  token=$(curl -fsS -X POST "$SMOKE_TOKEN_URL" \
    --data-urlencode "client_id=$SMOKE_CLIENT_ID" \
    --data-urlencode "scope=$SMOKE_SCOPE" \
    --data-urlencode "grant_type=client_credentials" \
    --data-urlencode "client_assertion_type=urn:ietf:params:oauth:client-assertion-type:jwt-bearer" \
    --data-urlencode "client_assertion=$assertion" |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["access_token"])')
fi

if [[ -z "$token" ]]; then
  if [[ "${SMOKE_REQUIRE_AUTH:-false}" == true ]]; then
    echo "smoke-test.sh: no token source configured (SMOKE_BEARER_TOKEN or SMOKE_CLIENT_ID/SMOKE_TOKEN_URL/SMOKE_SCOPE)" >&2
    exit 1
  fi
  echo "smoke-test.sh: WARNING: no token source configured; authenticated read skipped"
  exit 0
fi

echo "smoke-test.sh: GET $base/api/leaderboard with a token"
code=$(status_of "$base/api/leaderboard" -H "Authorization: Bearer $token")
if [[ "$code" != 200 ]]; then
  echo "smoke-test.sh: authenticated read failed ($code)" >&2
  exit 1
fi
echo "   200"
echo "smoke-test.sh: passed"
