#!/usr/bin/env bash
# Deploys one release of qotd to the environment's Functions host.
#
#   flex_consumption: zip deploy of dist/functionapp.zip (scripts/package.sh) with Entra ID
#   container_apps:   new revision of the Functions container app running IMAGE
#
# Both steps are bounded: the deployment command by DEPLOY_TIMEOUT seconds (default 600), and,
# when APP_URL is set, the wait for <APP_URL>/api/health to answer 200 afterwards by
# DEPLOY_HEALTH_TIMEOUT seconds (default 420). Either running out fails the deploy with a
# message instead of hanging until the job's own limit.
#
# Usage: [APP_URL=https://...] scripts/deploy-app.sh <hosting> <resource-group> <app-name> [image]
set -euo pipefail

cd "$(dirname "$0")/.."

if [[ $# -lt 3 ]]; then
  echo "usage: $0 flex_consumption|container_apps <resource-group> <app-name> [image]" >&2
  exit 2
fi
hosting=$1
rg=$2
app=$3
image=${4:-}
deploy_timeout=${DEPLOY_TIMEOUT:-600}
health_timeout=${DEPLOY_HEALTH_TIMEOUT:-420}

# run_bounded WHAT CMD...: CMD, killed after deploy_timeout seconds.
run_bounded() {
  local what=$1 rc=0
  shift
  timeout --kill-after=30 "$deploy_timeout" "$@" || rc=$?
  if ((rc == 124 || rc == 137)); then
    echo "deploy-app.sh: $what did not finish within ${deploy_timeout}s (DEPLOY_TIMEOUT)" >&2
  fi
  return "$rc"
}

# wait_healthy URL: polls URL/api/health until it answers 200 or health_timeout passes.
wait_healthy() {
  local url=${1%/}/api/health code=000
  local deadline=$((SECONDS + health_timeout))
  echo "deploy-app.sh: waiting up to ${health_timeout}s for $url"
  while ((SECONDS < deadline)); do
    code=$(curl -sS -o /dev/null -w '%{http_code}' --max-time 15 "$url" || echo 000)
    if [[ "$code" == 200 ]]; then
      echo "deploy-app.sh: healthy"
      return 0
    fi
    sleep 10
  done
  echo "deploy-app.sh: $url still answers $code after ${health_timeout}s (DEPLOY_HEALTH_TIMEOUT); check the app's log stream / Application Insights" >&2
  return 1
}

case "$hosting" in
  flex_consumption)
    if [[ ! -f dist/functionapp.zip ]]; then
      echo "deploy-app.sh: dist/functionapp.zip missing; run scripts/package.sh first" >&2
      exit 1
    fi
    echo "deploy-app.sh: zip deploy to Function App $app"
    run_bounded "zip deploy" az functionapp deployment source config-zip -g "$rg" -n "$app" --src dist/functionapp.zip --output none
    ;;
  container_apps)
    if [[ -z "$image" ]]; then
      echo "deploy-app.sh: container_apps hosting needs the image to deploy" >&2
      exit 2
    fi
    echo "deploy-app.sh: container app $app -> $image"
    run_bounded "revision update" az containerapp update -g "$rg" -n "$app" --image "$image" --output none
    ;;
  *)
    echo "deploy-app.sh: unknown hosting '$hosting'" >&2
    exit 2
    ;;
esac
if [[ -n "${APP_URL:-}" ]]; then
  wait_healthy "$APP_URL"
fi
echo "deploy-app.sh: done"
