#!/usr/bin/env bash
# Deploys one release of qotd to the environment's Functions host.
#
#   flex_consumption: zip deploy of dist/functionapp.zip (scripts/package.sh) with Entra ID
#   container_apps:   new revision of the Functions container app running IMAGE
#
# Usage: scripts/deploy-app.sh <hosting> <resource-group> <app-name> [image]
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

case "$hosting" in
  flex_consumption)
    if [[ ! -f dist/functionapp.zip ]]; then
      echo "deploy-app.sh: dist/functionapp.zip missing; run scripts/package.sh first" >&2
      exit 1
    fi
    echo "deploy-app.sh: zip deploy to Function App $app"
    az functionapp deployment source config-zip -g "$rg" -n "$app" --src dist/functionapp.zip --output none
    ;;
  container_apps)
    if [[ -z "$image" ]]; then
      echo "deploy-app.sh: container_apps hosting needs the image to deploy" >&2
      exit 2
    fi
    echo "deploy-app.sh: container app $app -> $image"
    az containerapp update -g "$rg" -n "$app" --image "$image" --output none
    ;;
  *)
    echo "deploy-app.sh: unknown hosting '$hosting'" >&2
    exit 2
    ;;
esac
echo "deploy-app.sh: done"
