#!/usr/bin/env bash
# Interop: apps sign in through latchkey's hosted pages with the client libraries people use,
# pinned: Authlib (Python) and openid-client v6 (Node), against a live debug server over a
# fresh SQLite file. Then a real browser (Debian's Chromium, driven by playwright-core) signs
# in to the README's openid-client web app with password, TOTP step and consent, and signs
# the interactive docs in with the code flow; its screenshots go to $SHOTS
# (target/browser-shots unless set; `SHOTS=docs/screenshots` refreshes the README's).
set -euo pipefail
cd "$(dirname "$0")/.."

venv=$PWD/target/interop-venv
if ! "$venv/bin/python" -c 'import authlib, requests; assert authlib.__version__ == "1.9.10"' 2>/dev/null; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check "authlib==1.9.10" "requests==2.34.2"
fi

node_dir=$PWD/target/interop-node
version() { node -p 'require(process.argv[1]).version' "$node_dir/node_modules/$1/package.json" 2>/dev/null; }
if [ "$(version openid-client)" != "6.9.0" ] || [ "$(version playwright-core)" != "1.64.1" ]; then
  mkdir -p "$node_dir"
  npm install --prefix "$node_dir" --silent --no-audit --no-fund openid-client@6.9.0 playwright-core@1.64.1
fi
# ES modules resolve packages beside the script: run copies next to node_modules.
cp examples/interop/*.mjs "$node_dir/"

if ! command -v chromium >/dev/null; then
  as_root=$([ "$(id -u)" = 0 ] || echo sudo)
  $as_root apt-get update -qq
  $as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium >/dev/null
fi
shots=${SHOTS:-$PWD/target/browser-shots}
mkdir -p "$shots"

cargo build --locked --quiet
bin=$PWD/target/debug/latchkey
work=$(mktemp -d)
server_pid=
app_pid=
cleanup() {
  for pid in $app_pid $server_pid; do kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; done
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
secret_of() { python3 -c 'import json, sys; print(json.load(sys.stdin)["client_secret"])'; }
secret=$("$bin" client create --name "Interop app" --id interop \
  --grant authorization_code --grant refresh_token --scope openid --scope profile --scope email \
  --redirect-uri http://127.0.0.1/callback | secret_of)

# The browser's user, app, and the client that enrols the user's TOTP over the API.
echo "$password" | "$bin" user create --username carol --email carol@example.com --password-stdin >/dev/null
app_secret=$("$bin" client create --name "Example web app" --id webapp \
  --grant authorization_code --scope openid --scope profile \
  --redirect-uri http://127.0.0.1/callback | secret_of)
setup_secret=$("$bin" client create --name "Setup" --id setup --grant password --scope account | secret_of)
# The interactive docs' client, exactly as the README registers it.
"$bin" client create --name "API docs" --id docs --public --first-party \
  --grant authorization_code --scope openid --scope profile --scope email --scope account --scope admin \
  --redirect-uri http://127.0.0.1/docs/oauth-receiver.html >/dev/null

"$bin" serve & server_pid=$!
for _ in $(seq 1 100); do curl -sf "$base/healthz" >/dev/null && break; sleep 0.1; done

"$venv/bin/python" examples/interop/authlib_code_flow.py "$base" interop "$secret" alice "$password"
node "$node_dir/openid_client_code_flow.mjs" "$base" interop "$secret" alice "$password"

app_port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
node "$node_dir/web_app.mjs" "$base" webapp "$app_secret" "$app_port" & app_pid=$!
for _ in $(seq 1 100); do curl -s -o /dev/null "http://127.0.0.1:$app_port/" && break; sleep 0.1; done
node "$node_dir/browser_signin.mjs" "$base" "http://127.0.0.1:$app_port" carol "$password" "$setup_secret" "$shots"
