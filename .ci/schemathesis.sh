#!/usr/bin/env bash
# Property-based fuzz of the HTTP API from its OpenAPI document (schemathesis): a debug
# server on a free loopback port over a fresh SQLite file, a seeded admin and client, then a
# run bounded in examples and time. --generation-deterministic derandomises it (a fixed
# seed, which then has no say, would not: the phases mix in data from earlier responses).
# Fails on any 5xx or any response whose status, content type or body breaks the document.
set -euo pipefail
cd "$(dirname "$0")/.."

SCHEMATHESIS_VERSION=4.32.5
# Bounds: the whole step stays well under 4 minutes on 2 cores.
MAX_EXAMPLES=${ST_MAX_EXAMPLES:-50}
# A hard stop per schemathesis run (seconds); its own --max-time would instead keep fuzzing
# until the time is spent, so the amount of work would depend on the machine's speed.
MAX_TIME=${ST_MAX_TIME:-150}

venv=$PWD/target/schemathesis-venv
if ! "$venv/bin/schemathesis" --version 2>/dev/null | grep -q "$SCHEMATHESIS_VERSION"; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check "schemathesis==$SCHEMATHESIS_VERSION"
fi

cargo build --locked --quiet
bin=$PWD/target/debug/latchkey

work=$(mktemp -d)
server_pid=
cleanup() {
  if [ -n "$server_pid" ]; then kill "$server_pid" 2>/dev/null || true; wait "$server_pid" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT

port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
base="http://127.0.0.1:$port"
export LATCHKEY_BIND="127.0.0.1:$port" \
  LATCHKEY_DATABASE_URL="sqlite://$work/latchkey.db?mode=rwc" \
  LATCHKEY_KEYS_DIR="$work/keys" \
  LATCHKEY_MAIL="dir:$work/mail" \
  LATCHKEY_RATE_LIMIT_LOGIN=off LATCHKEY_RATE_LIMIT_REFRESH=off LATCHKEY_RATE_LIMIT_REGISTER=off
unset LATCHKEY_ISSUER LATCHKEY_TRUSTED_PROXIES

"$bin" migrate >/dev/null 2>&1
client=$("$bin" client create --name schemathesis --grant password --grant refresh_token \
  --grant client_credentials --scope openid --scope profile --scope email)
client_id=$(python3 -c 'import json, sys; print(json.load(sys.stdin)["client_id"])' <<<"$client")
client_secret=$(python3 -c 'import json, sys; print(json.load(sys.stdin)["client_secret"])' <<<"$client")
admin_password="schemathesis-Admin-pw-1"
admin=$(echo "$admin_password" | "$bin" user create --username st-admin --email st-admin@example.com \
  --role admin --password-stdin)
ST_ADMIN_ID=$(python3 -c 'import json, sys; print(json.load(sys.stdin)["id"])' <<<"$admin")

"$bin" serve >"$work/server.log" 2>&1 &
server_pid=$!
for _ in $(seq 1 100); do
  curl -fsS "$base/healthz" >/dev/null 2>&1 && break
  kill -0 "$server_pid" 2>/dev/null || { cat "$work/server.log"; exit 1; }
  sleep 0.1
done

token=$(curl -fsS -u "$client_id:$client_secret" "$base/oauth/token" \
  -d grant_type=password -d username=st-admin --data-urlencode "password=$admin_password" \
  -d "scope=openid profile email" \
  | python3 -c 'import json, sys; print(json.load(sys.stdin)["access_token"])')
# The token's session: its refresh-token family, the id DELETE /account/sessions/{id} takes.
ST_ADMIN_SID=$(python3 -c '
import base64, json, sys
payload = sys.argv[1].split(".")[1]
print(json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))["sid"])' "$token")
export ST_ADMIN_ID ST_ADMIN_SID ST_CLIENT_ID=$client_id SCHEMATHESIS_HOOKS=$PWD/.ci/schemathesis_hooks.py

cat >"$work/schemathesis.toml" <<TOML
[auth.openapi.BearerToken]
bearer = "$token"

[auth.openapi.ClientSecretBasic]
username = "$client_id"
password = "$client_secret"
TOML

# The hooks file keeps the driving admin, its session and its client out of reach of the
# id-taking operations. POST /account/logout ends that session whatever it is sent: it runs
# last, on its own.
run_st() {
  # From the temp dir, so that schemathesis' own cache lands there, not in the repo.
  (cd "$work" && timeout --kill-after=10 "$MAX_TIME" "$venv/bin/schemathesis" \
    --config-file "$work/schemathesis.toml" run "$base/openapi.json" \
    --checks not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance \
    --phases examples,coverage,fuzzing,stateful --generation-deterministic --max-examples "$MAX_EXAMPLES" \
    --workers 1 --request-timeout 10 --no-color "$@")
}
status=0
run_st --exclude-path /account/logout "$@" || status=$?
run_st --include-path /account/logout "$@" || status=$?

if [ "$status" -ne 0 ]; then
  echo "--- server log (tail)"
  tail -n 50 "$work/server.log"
fi
exit "$status"
