#!/usr/bin/env bash
# Runs examples/walkthrough.sh (the README's walk-through) against a fresh server on SQLite,
# as a new user would: server and commands in one scratch directory.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v jq >/dev/null || { apt-get update -qq >/dev/null && apt-get install -y -qq jq >/dev/null; }
cargo build --locked --quiet --bin latchkey
BIN=$PWD/target/debug/latchkey
SCRIPT=$PWD/examples/walkthrough.sh
WORK=$(mktemp -d)
PORT=18080
PID=""
cleanup() { [[ -n "$PID" ]] && kill "$PID" 2>/dev/null && wait "$PID" 2>/dev/null; rm -rf "$WORK"; }
trap cleanup EXIT
cd "$WORK"
env -u LATCHKEY_ISSUER LATCHKEY_BIND=127.0.0.1:$PORT LATCHKEY_LOG=warn "$BIN" serve 2>server.log & PID=$!
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$PORT/readyz" >/dev/null && break; sleep 0.1; done
LATCHKEY_BIND=127.0.0.1:$PORT LATCHKEY="$BIN" BASE="http://127.0.0.1:$PORT" bash "$SCRIPT" >walkthrough.log \
  || { cat walkthrough.log server.log; echo "the README walk-through failed"; exit 1; }
echo "walk-through passed"
