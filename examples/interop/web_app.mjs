// A web app that signs its users in with latchkey, using openid-client v6.
// Usage: node web_app.mjs ISSUER CLIENT_ID CLIENT_SECRET PORT
import http from 'node:http';
import * as oidc from 'openid-client';

const [issuer, clientId, clientSecret, port] = process.argv.slice(2);
const redirect_uri = `http://127.0.0.1:${port}/callback`;
const config = await oidc.discovery(new URL(issuer), clientId, clientSecret, undefined,
  issuer.startsWith('http:') ? { execute: [oidc.allowInsecureRequests] } : undefined);
const pending = new Map(); // state → PKCE verifier and nonce; a real app keeps them in its session

http.createServer(async (req, res) => {
  const url = new URL(req.url, redirect_uri);
  if (url.pathname !== '/callback') {
    const verifier = oidc.randomPKCECodeVerifier(), state = oidc.randomState(), nonce = oidc.randomNonce();
    pending.set(state, { verifier, nonce });
    const to = oidc.buildAuthorizationUrl(config, { redirect_uri, scope: 'openid profile', state, nonce,
      code_challenge: await oidc.calculatePKCECodeChallenge(verifier), code_challenge_method: 'S256' });
    return res.writeHead(302, { location: to.href }).end();
  }
  const state = url.searchParams.get('state'), { verifier, nonce } = pending.get(state) ?? {};
  pending.delete(state);
  try {
    const tokens = await oidc.authorizationCodeGrant(config, url,
      { pkceCodeVerifier: verifier, expectedState: state, expectedNonce: nonce });
    const me = await oidc.fetchUserInfo(config, tokens.access_token, tokens.claims().sub);
    res.end(`Signed in as ${me.preferred_username}`);
  } catch (err) {
    res.writeHead(400).end(`Sign-in failed: ${err.message}`);
  }
}).listen(Number(port), '127.0.0.1');
