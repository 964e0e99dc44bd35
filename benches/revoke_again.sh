#!/usr/bin/env bash
# Introspection of a valid access token with wrk, alone and then beside a second wrk that
# revokes one already revoked token again and again: what a client that repeats its
# revocations costs everyone else's introspections. Prints requests/s and p99 of both runs.
#
#   benches/revoke_again.sh [--database-url URL] [--port 8091] [--bin PATH]
#
# --database-url  default: a fresh SQLite file in a temp dir. A postgres://… database is
#                 emptied first (DROP SCHEMA public CASCADE): give it a throwaway one.
# --bin           another latchkey binary (an older build, to compare); default: build this tree.
# Needs wrk, curl and jq. Traffic goes to 127.0.0.1 only; 16 connections introspect for 6 s,
# 2 connections revoke meanwhile.
set -euo pipefail
cd "$(dirname "$0")/.."
DB=""; PORT=8091; BIN=""
while [[ $# -gt 0 ]]; do
  case "$1" in
    --database-url) DB="$2"; shift 2;;
    --port) PORT="$2"; shift 2;;
    --bin) BIN="$(realpath "$2")"; shift 2;;
    -h|--help) sed -n '2,11p' "$0" | sed 's/^# \{0,1\}//'; exit 0;;
    *) echo "unknown argument $1" >&2; exit 2;;
  esac
done
for tool in wrk curl jq; do command -v "$tool" >/dev/null || { echo "missing $tool" >&2; exit 2; }; done
if ss -ltn | grep -q ":$PORT "; then echo "port $PORT is taken" >&2; exit 2; fi

if [[ -z "$BIN" ]]; then
  cargo build --release --quiet --bin latchkey
  BIN=$PWD/target/release/latchkey
fi
WORK=$(mktemp -d)
PID=""
cleanup() { [[ -n "$PID" ]] && kill "$PID" 2>/dev/null && wait "$PID" 2>/dev/null; rm -rf "$WORK"; }
trap cleanup EXIT
if [[ -z "$DB" ]]; then
  DB="sqlite://$WORK/latchkey.db?mode=rwc"
else
  PGOPTIONS='-c client_min_messages=warning' psql "$DB" -qc 'DROP SCHEMA public CASCADE; CREATE SCHEMA public;' >/dev/null
fi
export LATCHKEY_DATABASE_URL="$DB" LATCHKEY_KEYS_DIR="$WORK/keys" LATCHKEY_BIND=127.0.0.1:$PORT \
       LATCHKEY_LOG=warn
unset LATCHKEY_ISSUER
BASE=http://127.0.0.1:$PORT

CLIENT=$(cd "$WORK" && "$BIN" client create --name revoke-again --grant client_credentials --scope api)
ID=$(jq -r .client_id <<<"$CLIENT")
SECRET=$(jq -r .client_secret <<<"$CLIENT")
(cd "$WORK" && exec "$BIN" serve >"$WORK/server.log" 2>&1) & PID=$!
until curl -sf "$BASE/readyz" >/dev/null; do sleep 0.01; done

token() { curl -sf -u "$ID:$SECRET" -d grant_type=client_credentials "$BASE/oauth/token" | jq -er .access_token; }
LIVE=$(token)
REVOKED=$(token)
curl -sf -o /dev/null -u "$ID:$SECRET" --data-urlencode "token=$REVOKED" "$BASE/oauth/revoke"
[[ $(curl -sf -u "$ID:$SECRET" --data-urlencode "token=$LIVE" "$BASE/oauth/introspect" | jq .active) == true ]]

AUTH=$(printf '%s:%s' "$ID" "$SECRET" | base64 -w0)
script() {
  cat >"$WORK/$1.lua" <<LUA
wrk.method = "POST"
wrk.body = "token=$2"
wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"
wrk.headers["Authorization"] = "Basic $AUTH"
LUA
}
script introspect "$LIVE"
script revoke "$REVOKED"
introspect() { wrk -t2 -c16 -d6s --latency -s "$WORK/introspect.lua" "$BASE/oauth/introspect"; }
summary() { awk '/Requests\/sec/ {rps = $2} / 99%/ {p99 = $2} /Non-2xx/ {bad = $5}
                 END {printf "%10.0f/s  p99 %-8s%s", rps, p99, bad ? "  " bad " not 2xx" : ""}'; }

printf '%-32s %s\n' "introspection alone" "$(introspect | summary)"
wrk -t1 -c2 -d8s --latency -s "$WORK/revoke.lua" "$BASE/oauth/revoke" >"$WORK/revoke.out" & REVOKER=$!
sleep 1
BESIDE=$(introspect | summary)
wait "$REVOKER"
printf '%-32s %s\n' "introspection beside revocations" "$BESIDE" \
  "the revocations" "$(summary <"$WORK/revoke.out")"
