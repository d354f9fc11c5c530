#!/usr/bin/env bash
# Writes .compose/dev.env for compose.yaml: the dev environment's application settings, as
# Terraform gives them to the Function App (`terraform output -json` -> app_settings), adjusted
# for a container on a laptop:
#
#   QOTD_DATA_DIR=/tmp/qotd, QOTD_LOG_FORMAT=text   local paths and readable logs
#   IDENTITY_HEADER=<random>                       shared with the token-proxy service, which
#                                                  hands out tokens for your `az login`
#   AzureWebJobs.<Function>.Disabled=true          for each Service Bus trigger function, so
#                                                  the deployed dev app keeps consuming the
#                                                  subscriptions (--with-triggers to compete)
#
# Nothing secret is written (identities, not keys), but the file is still private (0600) and
# git-ignored (.compose/.gitignore).
#
# Usage: scripts/compose-env.sh [--with-triggers] [--outputs FILE]
#   --outputs FILE   read `terraform output -json` saved in FILE instead of running terraform
set -euo pipefail

cd "$(dirname "$0")/.."

with_triggers=false
outputs_file=""
while (($# > 0)); do
  case "$1" in
    --with-triggers) with_triggers=true ;;
    --outputs)
      outputs_file=${2:?--outputs needs a file}
      shift
      ;;
    -h | --help)
      sed -n '2,20p' "$0"
      exit 0
      ;;
    *)
      echo "compose-env.sh: unknown argument '$1'" >&2
      exit 2
      ;;
  esac
  shift
done

outputs=$(mktemp)
trap 'rm -f "$outputs"' EXIT
if [[ -n "$outputs_file" ]]; then
  cp "$outputs_file" "$outputs"
else
  terraform -chdir=terraform output -json > "$outputs"
fi

mkdir -p .compose
printf '*\n' > .compose/.gitignore
umask 077
python3 - "$outputs" "$with_triggers" > .compose/dev.env.tmp << 'PY'
import json, pathlib, secrets, sys

outputs = json.load(open(sys.argv[1], encoding="utf-8"))
with_triggers = sys.argv[2] == "true"
if "app_settings" not in outputs:
    sys.exit("compose-env.sh: `terraform output -json` has no app_settings (apply the current terraform/ first)")
settings = dict(outputs["app_settings"]["value"])

settings.update({
    "QOTD_DATA_DIR": "/tmp/qotd",
    "QOTD_LOG_FORMAT": "text",
    "IDENTITY_HEADER": secrets.token_hex(32),
})
if not with_triggers:
    for manifest in sorted(pathlib.Path("functions").glob("*/function.json")):
        bindings = json.loads(manifest.read_text(encoding="utf-8")).get("bindings", [])
        if any(b.get("type") == "serviceBusTrigger" for b in bindings):
            settings[f"AzureWebJobs.{manifest.parent.name}.Disabled"] = "true"

print("# Written by scripts/compose-env.sh from `terraform output -json`; do not edit.")
for name in sorted(settings):
    value = "" if settings[name] is None else str(settings[name])
    if "'" in value or "\n" in value:
        sys.exit(f"compose-env.sh: the value of {name} has a quote or newline; cannot write it to an env file")
    # Single quotes: Compose takes the value literally (no ${...} interpolation).
    print(f"{name}='{value}'")
PY
mv .compose/dev.env.tmp .compose/dev.env
count=$(grep -c '=' .compose/dev.env)
echo "compose-env.sh: wrote .compose/dev.env ($count settings)"
echo "compose-env.sh: next: bash scripts/package.sh && docker compose up --build"
