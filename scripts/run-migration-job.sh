#!/usr/bin/env bash
# Runs `qotd migrate` inside Azure: points the Container Apps migration job at IMAGE, starts
# one execution and waits for it. Exits non-zero if the execution does not succeed.
#
# Usage: scripts/run-migration-job.sh <resource-group> <job-name> <image> [timeout-seconds]
set -euo pipefail

if [[ $# -lt 3 ]]; then
  echo "usage: $0 <resource-group> <job-name> <image> [timeout-seconds]" >&2
  exit 2
fi
rg=$1
job=$2
image=$3
timeout=${4:-1200}

echo "run-migration-job.sh: $job -> $image"
az containerapp job update -g "$rg" -n "$job" --image "$image" --output none
execution=$(az containerapp job start -g "$rg" -n "$job" --query name --output tsv)
echo "run-migration-job.sh: started execution $execution"

deadline=$((SECONDS + timeout))
status=""
while ((SECONDS < deadline)); do
  status=$(az containerapp job execution show -g "$rg" -n "$job" --job-execution-name "$execution" \
    --query properties.status --output tsv 2> /dev/null || echo "Unknown")
  case "$status" in
    Succeeded)
      echo "run-migration-job.sh: $execution succeeded"
      exit 0
      ;;
    Failed | Stopped | Degraded)
      break
      ;;
  esac
  sleep 10
done

echo "run-migration-job.sh: $execution ended as '${status:-timeout}'" >&2
# Best effort: show what the migration printed (needs a recent containerapp CLI extension).
az containerapp job logs show -g "$rg" -n "$job" --execution "$execution" --container migrate \
  --format text 2> /dev/null || echo "(logs: ContainerAppConsoleLogs in the Log Analytics workspace)" >&2
exit 1
