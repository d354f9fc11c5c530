#!/usr/bin/env bash
# Proves openapi.yaml against a running `qotd local` with schemathesis, a property-based API
# tester that reads only the spec: it generates valid and invalid requests for every operation,
# follows the spec's OpenAPI links (stateful phase), and checks every answer (status documented,
# content type, headers, response schema, valid data accepted, invalid data rejected, auth not
# ignored, 405 + Allow for undocumented methods, no 5xx).
#
# It runs twice against one fresh instance: as a registered player, then as an admin. In the
# player run schemathesis warns that the two /api/admin operations answered only 403: expected.
# One hook (below) covers the one rule OpenAPI cannot state (`date` with `period=alltime`).
#
# Usage: scripts/schemathesis.sh [extra `schemathesis run` options...]
#   e.g. scripts/schemathesis.sh --include-operation-id QuizAttempts
#
# Environment:
#   QOTD_BIN              the qotd binary (default: target/debug/qotd)
#   QOTD_VENV_DIR         the Python venv holding schemathesis (default:
#                         ${TMPDIR:-/tmp}/qotd-schemathesis-<version>); created when missing
#   QOTD_ST_SEED          the seed of the run (default: 20261127)
#   QOTD_ST_MAX_EXAMPLES  examples per operation and phase (default: 100; the whole script then
#                         takes about 60-70 s on an idle 2-core machine, 300 takes about 3.5 min)
#   QOTD_ST_WORKERS       concurrent schemathesis workers (default: 1, so the order of requests,
#                         and with it the server state each request meets, is reproducible)
#   QOTD_ST_REPORT_DIR    where JUnit and NDJSON reports go (default: a temp dir, removed)
#
# Exit status: 0 when both runs report no failure and no error, 1 otherwise, 2 on bad setup.
set -euo pipefail

SCHEMATHESIS_VERSION=4.32.5

cd "$(dirname "$0")/.."
repo=$(pwd)
spec="$repo/openapi.yaml"
bin=${QOTD_BIN:-target/debug/qotd}
tmp_base=${TMPDIR:-/tmp}
venv=${QOTD_VENV_DIR:-$tmp_base/qotd-schemathesis-$SCHEMATHESIS_VERSION}
seed=${QOTD_ST_SEED:-20261127}
max_examples=${QOTD_ST_MAX_EXAMPLES:-100}
workers=${QOTD_ST_WORKERS:-1}

say() { echo "schemathesis.sh: $*"; }
die() {
  echo "schemathesis.sh: $*" >&2
  exit 2
}

[[ -x "$bin" ]] || die "no qotd binary at '$bin' (build it with 'cargo build' or set QOTD_BIN)"
bin=$(cd "$(dirname "$bin")" && pwd)/$(basename "$bin")
command -v python3 >/dev/null || die "python3 is required"
command -v curl >/dev/null || die "curl is required"

started=$(date +%s)

# --- the venv with the pinned schemathesis ---------------------------------------------------
st="$venv/bin/schemathesis"
if ! { [[ -x "$st" ]] && "$st" --version 2>/dev/null | grep -qx "schemathesis, version $SCHEMATHESIS_VERSION"; }; then
  say "installing schemathesis==$SCHEMATHESIS_VERSION into $venv"
  python3 -m venv "$venv" || die "could not create the venv $venv"
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check \
    "schemathesis==$SCHEMATHESIS_VERSION" || die "pip could not install schemathesis==$SCHEMATHESIS_VERSION"
fi
"$st" --version

# --- a fresh qotd local on a free loopback port ----------------------------------------------
work=$(mktemp -d "$tmp_base/qotd-schemathesis.XXXXXX")
data="$work/data"
mkdir -p "$data"
report_dir=${QOTD_ST_REPORT_DIR:-$work/reports}
mkdir -p "$report_dir"
server_pid=""

# shellcheck disable=SC2329 # invoked through the EXIT trap below
cleanup() {
  if [[ -n "$server_pid" ]] && kill -0 "$server_pid" 2>/dev/null; then
    kill -INT "$server_pid" 2>/dev/null || true
    for _ in $(seq 1 50); do
      kill -0 "$server_pid" 2>/dev/null || break
      sleep 0.1
    done
    kill -KILL "$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

base=""
for try in 1 2 3; do
  port=$(free_port)
  base="http://127.0.0.1:$port"
  say "starting $bin local on 127.0.0.1:$port (data in $data)"
  RUST_LOG=${RUST_LOG:-warn} "$bin" local --addr "127.0.0.1:$port" --data-dir "$data" \
    >"$work/server.log" 2>&1 &
  server_pid=$!
  ready=no
  for _ in $(seq 1 600); do
    if ! kill -0 "$server_pid" 2>/dev/null; then
      break
    fi
    if [[ $(curl -s -o /dev/null -w '%{http_code}' --max-time 2 "$base/api/health" || true) == 200 ]]; then
      ready=yes
      break
    fi
    sleep 0.1
  done
  [[ $ready == yes ]] && break
  if kill -0 "$server_pid" 2>/dev/null; then
    cat "$work/server.log" >&2
    die "qotd local did not answer GET $base/api/health within 60 s"
  fi
  wait "$server_pid" 2>/dev/null || true
  server_pid=""
  say "qotd local exited at start (try $try); its log:"
  cat "$work/server.log" >&2
done
[[ -n "$server_pid" ]] || die "qotd local could not be started"
say "ready: $base"

# --- tokens and registration -----------------------------------------------------------------
player_token=$("$bin" token --user st-player --data-dir "$data")
admin_token=$("$bin" token --user st-admin --role admin --data-dir "$data")

register() {
  local token=$1 name=$2 code
  code=$(curl -s -o "$work/register.json" -w '%{http_code}' --max-time 10 -X POST "$base/api/users/me" \
    -H "authorization: Bearer $token" -H 'content-type: application/json' \
    -d "{\"displayName\":\"$name\"}")
  if [[ $code != 201 && $code != 200 ]]; then
    cat "$work/register.json" >&2
    die "registering $name gave $code"
  fi
}
register "$player_token" "Schemathesis Player"
register "$admin_token" "Schemathesis Admin"

# --- hooks: the one rule OpenAPI cannot state --------------------------------------------------
# `date` together with `period=alltime` is a 400 on both leaderboard routes (openapi.yaml says so
# in the parameter's description). A dependency between two parameters cannot be written in
# OpenAPI's parameter schemas, so a *positive* (schema-valid) case that combines them is not
# valid in fact: for those cases alone, drop `date`. Negative cases are left alone.
mkdir -p "$work/hooks"
cat >"$work/hooks/qotd_hooks.py" <<'PY'
import schemathesis

BOARD_PATHS = {"/api/leaderboard", "/api/leaderboard/me"}


@schemathesis.hook
def map_case(context, case):
    meta = case.meta
    if (
        case.operation.path in BOARD_PATHS
        and meta is not None
        and meta.generation.mode.is_positive
        and isinstance(case.query, dict)
        and case.query.get("period") == "alltime"
        and "date" in case.query
    ):
        case.query = {k: v for k, v in case.query.items() if k != "date"}
    return case
PY

# --- the two runs ----------------------------------------------------------------------------
# No crash cache (it would replay earlier runs' failures first, so a run would depend on the
# ones before it) and no example database: each run depends on the seed alone. schemathesis
# runs from the temp dir, so nothing is written into the repository.
cat >"$work/schemathesis.toml" <<'TOML'
[cache]
enabled = false
TOML

declare -A result
run_as() {
  local role=$1 token=$2 rc=0
  shift 2
  say "=== run as $role: all checks, phases examples,coverage,fuzzing,stateful, seed $seed, up to $max_examples examples per operation"
  # The exit status goes through a file: the pipe into tee would hide it.
  {
    cd "$work"
    PYTHONPATH="$work/hooks${PYTHONPATH:+:$PYTHONPATH}" SCHEMATHESIS_HOOKS=qotd_hooks \
    "$st" --config-file "$work/schemathesis.toml" run "$spec" \
    --url "$base" \
    --header "Authorization: Bearer $token" \
    --checks all \
    --phases examples,coverage,fuzzing,stateful \
    --mode all \
    --seed "$seed" \
    --generation-database none \
    --max-examples "$max_examples" \
    --workers "$workers" \
    --request-timeout 20 \
    --continue-on-failure \
    --no-color \
    --report junit,ndjson \
    --report-junit-path "$report_dir/$role.junit.xml" \
    --report-ndjson-path "$report_dir/$role.ndjson" \
    "$@" || rc=$?
    echo "$rc" >"$work/$role.rc"
  } 2>&1 | tee "$work/$role.log"
  result[$role]=$(cat "$work/$role.rc")
}
run_as player "$player_token" "$@"
run_as admin "$admin_token" "$@"

# --- summary ---------------------------------------------------------------------------------
if grep -qE 'panicked' "$work/server.log"; then
  say "the server log shows a panic:"
  grep -E -A5 'panicked' "$work/server.log" >&2 || true
  result[server]=1
fi
elapsed=$(($(date +%s) - started))
echo
echo "== summary: schemathesis $SCHEMATHESIS_VERSION against qotd local (seed $seed, max examples $max_examples, workers $workers, ${elapsed}s in all)"
status=0
for role in player admin; do
  rc=${result[$role]}
  if [[ $rc -eq 0 ]]; then
    echo "-- $role: PASS"
  else
    echo "-- $role: FAIL (schemathesis exit $rc)"
    status=1
  fi
  # The test-case totals and the failure counts by code, as schemathesis printed them.
  sed -n 's/^ *\([0-9][0-9]* generated.*\)$/   test cases: \1/p' "$work/$role.log"
  sed -n 's/^ *❌ \(ST[0-9][0-9]* .*\)$/   failure: \1/p' "$work/$role.log"
  junit="$report_dir/$role.junit.xml"
  if [[ -f "$junit" ]]; then
    python3 - "$junit" <<'PY' || echo "   (could not read $junit)"
import sys, xml.etree.ElementTree as ET
root = ET.parse(sys.argv[1]).getroot()
cases = root.iter("testcase")
rows = [(c.get("name"), c.find("failure") is not None or c.find("error") is not None) for c in cases]
failed = [name for name, bad in rows if bad]
print(f"   suites: {len(rows)} (each operation, plus the stateful tests), {len(failed)} failing")
for name in failed:
    print(f"     failing: {name}")
PY
  fi
done
if [[ -n "${result[server]:-}" ]]; then
  echo "-- server: FAIL (panic in its log)"
  status=1
fi
if [[ -n "${QOTD_ST_REPORT_DIR:-}" ]]; then
  echo "-- reports (JUnit, NDJSON): $report_dir"
fi
if [[ $status -ne 0 ]]; then
  echo "schemathesis.sh: FAILED - each failure above has a curl line that reproduces it" >&2
else
  echo "schemathesis.sh: 0 failures"
fi
exit "$status"
