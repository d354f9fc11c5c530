#!/usr/bin/env bash
# Pins the Functions host base image by digest: resolves the digest the tag points to now and
# writes `<tag>@sha256:<digest>` into the three places that name the image:
#
#   Dockerfile                                   ARG FUNCTIONS_IMAGE
#   terraform/variables.tf                       container_bootstrap_image default
#   terraform/modules/functionapp/variables.tf   container_image default
#
# Needs registry access (docker buildx, or skopeo). Run it, review the diff, commit; rerun to
# take a newer patch of the same tag.
#
# Usage: scripts/pin-base-image.sh [image-tag]
#   default: the tag currently in the Dockerfile (without any @sha256 suffix)
set -euo pipefail

cd "$(dirname "$0")/.."

current=$(sed -n 's/^ARG FUNCTIONS_IMAGE=//p' Dockerfile)
tag=${1:-${current%@*}}
if [[ -z "$tag" || "$tag" != *:* ]]; then
  echo "pin-base-image.sh: cannot tell the image tag (got '$tag'); pass it, e.g. mcr.microsoft.com/azure-functions/dotnet-isolated:4-dotnet-isolated10.0" >&2
  exit 2
fi

if docker buildx version > /dev/null 2>&1; then
  digest=$(docker buildx imagetools inspect "$tag" --format '{{json .Manifest}}' |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["digest"])')
elif command -v skopeo > /dev/null; then
  digest=$(skopeo inspect --format '{{.Digest}}' "docker://$tag")
else
  echo "pin-base-image.sh: needs docker buildx or skopeo" >&2
  exit 1
fi
if [[ ! "$digest" =~ ^sha256:[0-9a-f]{64}$ ]]; then
  echo "pin-base-image.sh: unexpected digest '$digest' for $tag" >&2
  exit 1
fi

pinned="$tag@$digest"
python3 - "$pinned" << 'PY'
import re, sys
pinned = sys.argv[1]
edits = [
    ("Dockerfile", r"(?m)^ARG FUNCTIONS_IMAGE=\S+$", f"ARG FUNCTIONS_IMAGE={pinned}"),
    ("terraform/variables.tf",
     r'(variable "container_bootstrap_image" \{[^}]*?default\s*=\s*)"[^"]*"', r'\g<1>"' + pinned + '"'),
    ("terraform/modules/functionapp/variables.tf",
     r'(variable "container_image" \{[^}]*?default\s*=\s*)"[^"]*"', r'\g<1>"' + pinned + '"'),
]
for path, pattern, replacement in edits:
    text = open(path, encoding="utf-8").read()
    new, n = re.subn(pattern, replacement, text, count=1, flags=re.S)
    if n != 1:
        sys.exit(f"pin-base-image.sh: no image default found in {path}")
    open(path, "w", encoding="utf-8").write(new)
    print(f"pin-base-image.sh: {path}: {pinned}")
PY
