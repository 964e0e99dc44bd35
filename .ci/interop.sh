#!/usr/bin/env bash
# Interop: apps sign in through latchkey's hosted pages with the client libraries people use,
# pinned: Authlib (Python) and openid-client v6 (Node), against a live debug server over a
# fresh SQLite file.
set -euo pipefail
cd "$(dirname "$0")/.."

venv=$PWD/target/interop-venv
if ! "$venv/bin/python" -c 'import authlib, requests; assert authlib.__version__ == "1.9.10"' 2>/dev/null; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check "authlib==1.9.10" "requests==2.34.2"
fi

node_dir=$PWD/target/interop-node
if [ "$(node -p 'require(process.argv[1]).version' "$node_dir/node_modules/openid-client/package.json" 2>/dev/null)" != "6.9.0" ]; then
  mkdir -p "$node_dir"
  npm install --prefix "$node_dir" --silent --no-audit --no-fund openid-client@6.9.0
fi
# ES modules resolve packages beside the script: run a copy next to node_modules.
cp examples/interop/openid_client_code_flow.mjs "$node_dir/"

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
export LATCHKEY_BIND="127.0.0.1:$port" LATCHKEY_DATABASE_URL="sqlite://$work/latchkey.db?mode=rwc" \
  LATCHKEY_KEYS_DIR="$work/keys" LATCHKEY_MAIL="dir:$work/mail" LATCHKEY_LOG=warn
unset LATCHKEY_ISSUER

password='correct horse battery staple'
echo "$password" | "$bin" user create --username alice --email alice@example.com --password-stdin >/dev/null
secret=$("$bin" client create --name "Interop app" --id interop \
  --grant authorization_code --grant refresh_token --scope openid --scope profile --scope email \
  --redirect-uri http://127.0.0.1/callback | python3 -c 'import json, sys; print(json.load(sys.stdin)["client_secret"])')

"$bin" serve & server_pid=$!
for _ in $(seq 1 100); do curl -sf "$base/healthz" >/dev/null && break; sleep 0.1; done

"$venv/bin/python" examples/interop/authlib_code_flow.py "$base" interop "$secret" alice "$password"
node "$node_dir/openid_client_code_flow.mjs" "$base" interop "$secret" alice "$password"
