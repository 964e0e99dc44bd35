// Browser sign-in as a Node app does it with openid-client v6: discovery, the authorization
// code flow with PKCE, state, nonce and the RFC 9207 `iss` check (driving latchkey's login and
// consent forms over HTTP the way a browser would), userinfo, refresh, introspection and
// revocation. Exits non-zero at the first thing that is not as expected.
//
// Usage: node openid_client_code_flow.mjs ISSUER CLIENT_ID CLIENT_SECRET USERNAME PASSWORD
import assert from 'node:assert/strict';
import * as client from 'openid-client';

const [issuer, clientId, clientSecret, username, password] = process.argv.slice(2);
const redirectUri = 'http://127.0.0.1/callback';

// The user's browser: one cookie, redirects looked at rather than followed.
const jar = new Map();
async function browse(url, form) {
  const res = await fetch(url, {
    method: form ? 'POST' : 'GET',
    redirect: 'manual',
    headers: {
      cookie: [...jar].map(([k, v]) => `${k}=${v}`).join('; '),
      ...(form ? { 'content-type': 'application/x-www-form-urlencoded' } : {}),
    },
    body: form ? new URLSearchParams(form) : undefined,
  });
  for (const line of res.headers.getSetCookie()) {
    const [pair] = line.split(';');
    const at = pair.indexOf('=');
    jar.set(pair.slice(0, at), pair.slice(at + 1));
  }
  return { status: res.status, location: res.headers.get('location'), html: await res.text() };
}
const hidden = (html, name) => html.match(new RegExp(`name="${name}" value="([^"]*)"`))[1];
const submit = (path, page, fields) =>
  browse(`${issuer}${path}`, { tx: hidden(page, 'tx'), csrf: hidden(page, 'csrf'), ...fields });

const config = await client.discovery(new URL(issuer), clientId, clientSecret, undefined, {
  execute: [client.allowInsecureRequests], // the test server speaks plain HTTP on loopback
});
const codeVerifier = client.randomPKCECodeVerifier();
const nonce = client.randomNonce();
const state = client.randomState();
const url = client.buildAuthorizationUrl(config, {
  redirect_uri: redirectUri,
  scope: 'openid profile email',
  code_challenge: await client.calculatePKCECodeChallenge(codeVerifier),
  code_challenge_method: 'S256',
  nonce,
  state,
});

const login = await browse(url.href);
assert.equal(login.status, 200);
let res = await submit('/oauth/authorize/login', login.html, { username, password });
if (res.status === 200) {
  assert.match(res.html, /name="decision"/);
  res = await submit('/oauth/authorize/consent', res.html, { decision: 'allow' });
}
assert.equal(res.status, 303);

const tokens = await client.authorizationCodeGrant(config, new URL(res.location), {
  pkceCodeVerifier: codeVerifier,
  expectedNonce: nonce,
  expectedState: state,
});
const claims = tokens.claims();
assert.equal(claims.azp, clientId);
assert.deepEqual(claims.amr, ['pwd']);

const info = await client.fetchUserInfo(config, tokens.access_token, claims.sub);
assert.equal(info.preferred_username, username);

const refreshed = await client.refreshTokenGrant(config, tokens.refresh_token);
assert.notEqual(refreshed.refresh_token, tokens.refresh_token);

const active = await client.tokenIntrospection(config, refreshed.access_token);
assert.equal(active.active, true);
await client.tokenRevocation(config, refreshed.refresh_token, { token_type_hint: 'refresh_token' });
const gone = await client.tokenIntrospection(config, refreshed.access_token);
assert.equal(gone.active, false);
console.log('openid-client: code flow with PKCE, state, nonce, iss, userinfo, refresh, introspection, revocation: ok');
