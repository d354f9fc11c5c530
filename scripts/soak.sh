#!/usr/bin/env bash
# Soak test (not in CI): N minutes of mixed load against `qotd local` on loopback, with a
# kill -9 and a restart on the same data dir every KILL_EVERY seconds. Prints requests, errors,
# events lost (acknowledged attempts missing from the daily board; must be 0), RSS and open file
# descriptors at start and end.
#
#   scripts/soak.sh [MINUTES]          (default 10)
#
# Environment:
#   QOTD_BIN     the binary to run (default: target/release/qotd, built if missing)
#   WORKERS      concurrent client loops (default 4)
#   KILL_EVERY   seconds between kill -9 (default 60; 0 = never)
#   SOAK_DIR     where data and logs go (default: a new temp dir, kept for inspection)
#
# Each client loop plays new players: mint a token, register, read today's quiz, submit one
# attempt, read the board and the player's rank, and send one malformed request (which must be a
# 4xx). Every answer is logged; at the end the outbox is drained and every attempt that got 201
# is looked up on the daily board (leaderboard_scores), which must hold it exactly once.
# Loopback only; every loop stops by itself when the time is up.
set -euo pipefail

MINUTES=${1:-10}
WORKERS=${WORKERS:-4}
KILL_EVERY=${KILL_EVERY:-60}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BIN=${QOTD_BIN:-$ROOT/target/release/qotd}
if [[ ! -x $BIN ]]; then
  (cd "$ROOT" && cargo build --release --bin qotd)
fi
SOAK_DIR=${SOAK_DIR:-$(mktemp -d /tmp/qotd-soak.XXXXXX)}
DATA=$SOAK_DIR/data
LOGS=$SOAK_DIR/logs
mkdir -p "$DATA" "$LOGS"
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
BASE=http://127.0.0.1:$PORT
DB=$DATA/qotd.db
END=$(( $(date +%s) + MINUTES * 60 ))
echo "soak: $MINUTES min, $WORKERS workers, kill -9 every ${KILL_EVERY}s, binary $BIN, dir $SOAK_DIR"

PID=
start_server() {
  local n=0
  while :; do
    QOTD_LOCAL_TIMERS=false QOTD_LOG=warn "$BIN" local --addr "127.0.0.1:$PORT" --data-dir "$DATA" \
      >>"$LOGS/server.out" 2>>"$LOGS/server.err" &
    PID=$!
    for _ in $(seq 1 100); do
      if curl -s -o /dev/null "$BASE/api/health"; then return 0; fi
      if ! kill -0 "$PID" 2>/dev/null; then break; fi
      sleep 0.1
    done
    n=$((n + 1))
    echo "  restart attempt $n failed (see $LOGS/server.err); retrying" >&2
    kill -9 "$PID" 2>/dev/null || true
    wait "$PID" 2>/dev/null || true
    [[ $n -lt 20 ]] || { echo "server does not start" >&2; exit 1; }
    sleep 0.5
  done
}
rss_kb() { awk '/^VmRSS/ {print $2}' "/proc/$1/status"; }
fds() { find "/proc/$1/fd" -mindepth 1 -maxdepth 1 | wc -l; }

start_server
sleep 2
RSS_START=$(rss_kb "$PID")
FDS_START=$(fds "$PID")
echo "start: pid $PID, RSS ${RSS_START} kB, open fds $FDS_START"

# One client loop. Log lines: "<kind> <status> <user> <date>" (status 000 = no answer).
worker() {
  local w=$1 i=0
  local out=$LOGS/worker-$w.log
  while [[ $(date +%s) -lt $END ]]; do
    i=$((i + 1))
    local user="s${w}x${i}x$RANDOM"
    local token
    token=$("$BIN" token --user "$user" --data-dir "$DATA" 2>/dev/null) || continue
    local auth="Authorization: Bearer $token"
    local s
    s=$(curl -s -m 10 -o /dev/null -w '%{http_code}' -X POST -H "$auth" -H 'content-type: application/json' \
      -d "{\"displayName\":\"$user\"}" "$BASE/api/users/me" || true)
    echo "register ${s:-000} $user -" >>"$out"
    local body date
    body=$(curl -s -m 10 -H "$auth" "$BASE/api/quizzes/today" || true)
    date=$(sed -n 's/.*"date":"\([0-9-]*\)".*/\1/p' <<<"$body")
    echo "today $([[ -n $date ]] && echo 200 || echo 000) $user $date" >>"$out"
    if [[ -n $date ]]; then
      local answers="[$((RANDOM % 4)),$((RANDOM % 4)),$((RANDOM % 4)),$((RANDOM % 4)),$((RANDOM % 4))]"
      s=$(curl -s -m 10 -o /dev/null -w '%{http_code}' -X POST -H "$auth" -H 'content-type: application/json' \
        -d "{\"answers\":$answers}" "$BASE/api/quizzes/$date/attempts" || true)
      echo "attempt ${s:-000} $user $date" >>"$out"
    fi
    s=$(curl -s -m 10 -o /dev/null -w '%{http_code}' -H "$auth" "$BASE/api/leaderboard?period=daily" || true)
    echo "board ${s:-000} $user -" >>"$out"
    s=$(curl -s -m 10 -o /dev/null -w '%{http_code}' -H "$auth" "$BASE/api/leaderboard/me?period=alltime" || true)
    echo "me ${s:-000} $user -" >>"$out"
    s=$(curl -s -m 10 -o /dev/null -w '%{http_code}' -X POST -H "$auth" -H 'content-type: application/json' \
      --data-binary '{"answers":[1,2,' "$BASE/api/quizzes/$date/attempts" || true)
    echo "malformed ${s:-000} $user -" >>"$out"
  done
}

PIDS=()
for w in $(seq 1 "$WORKERS"); do
  worker "$w" &
  PIDS+=($!)
done

KILLS=0
RSS_BEFORE_KILL=()
SAMPLES=()
T0=$(date +%s)
NEXT_KILL=$(( T0 + KILL_EVERY ))
NEXT_SAMPLE=$(( T0 + 60 ))
while [[ $(date +%s) -lt $END ]]; do
  sleep 1
  if [[ $(date +%s) -ge $NEXT_SAMPLE ]]; then
    SAMPLES+=("$(( $(date +%s) - T0 ))s:$(rss_kb "$PID")kB/$(fds "$PID")fd")
    NEXT_SAMPLE=$(( NEXT_SAMPLE + 60 ))
  fi
  if [[ $KILL_EVERY -gt 0 && $(date +%s) -ge $NEXT_KILL && $(( END - $(date +%s) )) -gt 20 ]]; then
    RSS_BEFORE_KILL+=("$(rss_kb "$PID")")
    kill -9 "$PID"
    wait "$PID" 2>/dev/null || true
    KILLS=$((KILLS + 1))
    start_server
    NEXT_KILL=$(( $(date +%s) + KILL_EVERY ))
  fi
done
for p in "${PIDS[@]}"; do wait "$p" || true; done
RSS_END=$(rss_kb "$PID")
FDS_END=$(fds "$PID")

# Drain: leases of a killed dispatcher expire after 60 s; the DispatchOutbox timer function is
# invoked through the invocation protocol until nothing is pending.
HANDLER=$(grep -o 'handler on http://[0-9.:]*' "$LOGS/server.out" | tail -1 | sed 's/handler on //')
pending=1
for _ in $(seq 1 120); do
  pending=$(sqlite3 "file:$DB?mode=ro" "SELECT COUNT(*) FROM platform_outbox WHERE sent_at IS NULL")
  [[ $pending -eq 0 ]] && break
  curl -s -m 30 -o /dev/null -X POST -H 'content-type: application/json' \
    -d '{"Data":{"timer":{"IsPastDue":false}},"Metadata":{}}' "$HANDLER/DispatchOutbox" || true
  sleep 1
done

cat "$LOGS"/worker-*.log >"$LOGS/all.log"
REQUESTS=$(wc -l <"$LOGS/all.log")
NO_ANSWER=$(awk '$2 == "000"' "$LOGS/all.log" | wc -l)
SERVER_ERRORS=$(awk '$2 ~ /^5/' "$LOGS/all.log" | wc -l)
UNAVAILABLE=$(awk '$2 == "503"' "$LOGS/all.log" | wc -l)
BAD_MALFORMED=$(awk '$1 == "malformed" && $2 !~ /^4/ && $2 != "000"' "$LOGS/all.log" | wc -l)
awk '$1 == "attempt" && $2 == "201" {print $3 "|" $4}' "$LOGS/all.log" | sort -u >"$LOGS/acknowledged.txt"
ACKED=$(wc -l <"$LOGS/acknowledged.txt")
sqlite3 "file:$DB?mode=ro" \
  "SELECT user_id || '|' || substr(period_key, 5) FROM leaderboard_scores WHERE period_key LIKE 'day:%' AND quizzes = 1" \
  | sort -u >"$LOGS/on-board.txt"
LOST=$(comm -23 "$LOGS/acknowledged.txt" "$LOGS/on-board.txt" | wc -l)
DOUBLE=$(sqlite3 "file:$DB?mode=ro" "SELECT COUNT(*) FROM leaderboard_scores WHERE quizzes > 1")
STORED=$(sqlite3 "file:$DB?mode=ro" "SELECT COUNT(*) FROM quiz_attempts")
ON_BOARD=$(wc -l <"$LOGS/on-board.txt")
POISON=$(sqlite3 "file:$DB?mode=ro" "SELECT COUNT(*) FROM platform_poison")
# Dead-lettered events land in the poison table with a "failed 10 deliveries" reason.
DEAD=$(sqlite3 "file:$DB?mode=ro" "SELECT COUNT(*) FROM platform_poison WHERE reason LIKE '%failed 10 deliveries%'")
PANICS=$(grep -c panicked "$LOGS/server.err" || true)
kill "$PID" 2>/dev/null || true
wait "$PID" 2>/dev/null || true

cat <<EOF
== soak result ($MINUTES min, $WORKERS workers, $KILLS x kill -9) ==
requests:                $REQUESTS ($(( REQUESTS / (MINUTES * 60) ))/s)
no answer (kill window): $NO_ANSWER
5xx:                     $SERVER_ERRORS (of which 503: $UNAVAILABLE)
malformed not 4xx:       $BAD_MALFORMED
attempts acknowledged:   $ACKED (stored: $STORED, on the daily board: $ON_BOARD)
events lost:             $LOST
counted twice:           $DOUBLE
outbox pending at end:   $pending
poison / dead letters:   $POISON / $DEAD
panics in server log:    $PANICS
RSS kB start / end:      $RSS_START / $RSS_END (before each kill: ${RSS_BEFORE_KILL[*]:-none})
open fds start / end:    $FDS_START / $FDS_END
every minute (RSS/fds):  ${SAMPLES[*]:-none}
logs:                    $LOGS
EOF
[[ $LOST -eq 0 && $DOUBLE -eq 0 && $SERVER_ERRORS -eq 0 && $PANICS -eq 0 ]]
