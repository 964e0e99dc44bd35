#!/usr/bin/env bash
# Starts a release build of latchkey on this machine and drives it with examples/loadtest.rs,
# then prints one table: requests/s and p50/p99 per scenario (the password grant beside the
# argon2 bound measured just before and just after it), start-up time, idle and peak RSS.
#
#   benches/loadtest.sh [--database-url URL] [--duration 10s] [--concurrency 16]
#                       [--scenario client-credentials,password,refresh,introspect,jwks] [--port 8080]
#                       [--bin PATH] [--rate-limit-refresh off|COUNT/PERIOD] [--flood N]
#
# --database-url  default: a fresh SQLite file in a temp dir. A postgres://… database is
#                 emptied first (DROP SCHEMA public CASCADE): give it a throwaway one.
# --bin           another latchkey binary (an older build, to compare); default: build this tree.
# --rate-limit-refresh  default off. A budget no run can spend (1000000/1h) measures what the
#                 limit's own step costs each refresh when it is on, as it is by default.
# --flood N       N more connections send password grants while each scenario runs
#                 (`--scenario introspect --flood 256`: introspection beside a login flood).
# Traffic goes to 127.0.0.1 only; the run is bounded by --duration per scenario. Client and
# server share the machine's cores, so the figures are a floor, not a ceiling.
set -euo pipefail
cd "$(dirname "$0")/.."
DB=""; DURATION=10s; CONCURRENCY=16; SCENARIOS=""; PORT=8080; BIN=""; REFRESH_LIMIT=off; FLOOD=0
while [[ $# -gt 0 ]]; do
  case "$1" in
    --database-url) DB="$2"; shift 2;;
    --duration) DURATION="$2"; shift 2;;
    --concurrency) CONCURRENCY="$2"; shift 2;;
    --scenario) SCENARIOS="$2"; shift 2;;
    --port) PORT="$2"; shift 2;;
    --bin) BIN="$(realpath "$2")"; shift 2;;
    --rate-limit-refresh) REFRESH_LIMIT="$2"; shift 2;;
    --flood) FLOOD="$2"; shift 2;;
    -h|--help) sed -n '2,18p' "$0" | sed 's/^# \{0,1\}//'; exit 0;;
    *) echo "unknown argument $1" >&2; exit 2;;
  esac
done
for tool in curl jq; do command -v "$tool" >/dev/null || { echo "missing $tool" >&2; exit 2; }; done

cargo build --release --quiet --bin latchkey --example loadtest
BIN=${BIN:-$PWD/target/release/latchkey}
LOAD=$PWD/target/release/examples/loadtest
WORK=$(mktemp -d)
PID=""
cleanup() { [[ -n "$PID" ]] && kill "$PID" 2>/dev/null && wait "$PID" 2>/dev/null; rm -rf "$WORK"; }
trap cleanup EXIT

if [[ -z "$DB" ]]; then
  DB="sqlite://$WORK/latchkey.db?mode=rwc"
else
  psql "$DB" -qc 'DROP SCHEMA public CASCADE; CREATE SCHEMA public;' >/dev/null
fi
export LATCHKEY_DATABASE_URL="$DB" LATCHKEY_KEYS_DIR="$WORK/keys" LATCHKEY_BIND=127.0.0.1:$PORT \
       LATCHKEY_RATE_LIMIT_LOGIN=off LATCHKEY_RATE_LIMIT_REFRESH="$REFRESH_LIMIT" LATCHKEY_LOG=warn
unset LATCHKEY_ISSUER

# Client and user first, so the key exists and the start-up below is a plain restart.
CLIENT=$("$BIN" client create --name loadtest --grant password --grant refresh_token \
         --grant client_credentials --scope api)
CLIENT_ID=$(jq -r .client_id <<<"$CLIENT")
CLIENT_SECRET=$(jq -r .client_secret <<<"$CLIENT")
echo 'correct horse battery staple' |
  "$BIN" user create --username loaduser --email loaduser@example.com --password-stdin >/dev/null

T0=$(date +%s%N)
"$BIN" serve 2>"$WORK/server.log" & PID=$!
until curl -sf "http://127.0.0.1:$PORT/readyz" >/dev/null; do sleep 0.005; done
STARTUP_MS=$(( ($(date +%s%N) - T0) / 1000000 ))
sleep 2
IDLE_KB=$(awk '/VmRSS/{print $2}' "/proc/$PID/status")

# The server's peak RSS during the run is the kernel's high-water mark.
"$LOAD" --base "http://127.0.0.1:$PORT" --client-id "$CLIENT_ID" --client-secret="$CLIENT_SECRET" \
        --username loaduser --password 'correct horse battery staple' --duration "$DURATION" \
        --concurrency "$CONCURRENCY" --flood "$FLOOD" ${SCENARIOS:+--scenario "$SCENARIOS"}
PEAK_KB=$(awk '/VmHWM/{print $2}' "/proc/$PID/status")
AFTER_KB=$(awk '/VmRSS/{print $2}' "/proc/$PID/status")
printf '\n%-28s %s\n' "database" "${DB%%://*}" "start-up to ready" "$STARTUP_MS ms" \
  "RSS idle / peak / after" "$((IDLE_KB / 1024)) / $((PEAK_KB / 1024)) / $((AFTER_KB / 1024)) MB"
