#!/usr/bin/env bash
# The README's walk-through, to the letter: CI runs it against a live server so the two
# cannot drift apart. Run it beside `cargo run --release -- serve`, from the same directory.
set -euo pipefail
LATCHKEY=${LATCHKEY:-./target/release/latchkey}   # built by `cargo run --release -- serve`
BASE=${BASE:-http://127.0.0.1:8080}
PASSWORD='correct horse battery staple'

# A user who can log in at once (users made by the CLI or the admin API need no email check).
echo "$PASSWORD" | $LATCHKEY user create --username alice --email alice@example.com --password-stdin

# A first-party app whose tokens are for the API https://api.example; it may also ask for
# `account`, latchkey's own self-service API. The secret is printed this once only.
WEB_SECRET=$($LATCHKEY client create --name "Web app" --id web --grant password --grant refresh_token \
  --scope openid --scope profile --scope api --scope account --audience https://api.example |
  jq -r .client_secret)

# Password grant (RFC 6749 §4.3) with client_secret_basic.
TOKENS=$(curl -sf -u "web:$WEB_SECRET" "$BASE/oauth/token" -d grant_type=password -d username=alice \
  --data-urlencode "password=$PASSWORD" -d 'scope=openid api')
jq . <<<"$TOKENS"   # access_token, token_type Bearer, expires_in 900, refresh_token, id_token, scope
ACCESS_TOKEN=$(jq -r .access_token <<<"$TOKENS")
REFRESH_TOKEN=$(jq -r .refresh_token <<<"$TOKENS")

# The access token is for the API only: its aud is ["https://api.example"].
jq -R 'split(".")[1] | @base64d | fromjson | {aud, scope}' <<<"$ACCESS_TOKEN"

# Refresh: the refresh token rotates on every use; presenting a used one ends the session.
TOKENS=$(curl -sf -u "web:$WEB_SECRET" "$BASE/oauth/token" \
  -d grant_type=refresh_token -d refresh_token="$REFRESH_TOKEN")
ACCESS_TOKEN=$(jq -r .access_token <<<"$TOKENS")

# The API's resource server checks tokens online: a confidential client registered for
# the same audience may introspect the tokens that name it.
API_SECRET=$($LATCHKEY client create --name "Orders API" --id api-server \
  --grant client_credentials --audience https://api.example | jq -r .client_secret)
curl -sf -u "api-server:$API_SECRET" "$BASE/oauth/introspect" -d token="$ACCESS_TOKEN" |
  jq -e '.active == true and .client_id == "web"'

# A service acting on its own behalf: client credentials (RFC 6749 §4.4).
BATCH_SECRET=$($LATCHKEY client create --name "Nightly batch" --id batch --grant client_credentials \
  --scope api --audience https://api.example | jq -r .client_secret)
curl -sf -u "batch:$BATCH_SECRET" "$BASE/oauth/token" -d grant_type=client_credentials |
  jq -e '.token_type == "Bearer" and .scope == "api"'

# latchkey's own account API wants a token with scope `account` (and only such a token
# carries the issuer in its aud); the API token above gets 403 insufficient_scope there.
curl -s -o /dev/null -w '%{http_code}\n' -H "Authorization: Bearer $ACCESS_TOKEN" "$BASE/account/me"
ACCOUNT_TOKEN=$(curl -sf -u "web:$WEB_SECRET" "$BASE/oauth/token" -d grant_type=password \
  -d username=alice --data-urlencode "password=$PASSWORD" -d scope=account | jq -r .access_token)
curl -sf -H "Authorization: Bearer $ACCOUNT_TOKEN" "$BASE/account/me" | jq -e '.username == "alice"'
