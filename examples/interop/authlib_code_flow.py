"""Browser sign-in as a Python app does it with Authlib's OAuth2Session: discovery, the
authorization code flow with PKCE and nonce (driving latchkey's login and consent forms over
HTTP the way a browser would), the ID token checked against the JWKS, userinfo, refresh,
introspection and revocation. Exits non-zero at the first thing that is not as expected.

Usage: authlib_code_flow.py ISSUER CLIENT_ID CLIENT_SECRET USERNAME PASSWORD
"""

import re
import sys
import warnings
from urllib.parse import parse_qs, urlparse

import requests
from authlib.common.security import generate_token
from authlib.integrations.requests_client import OAuth2Session

# authlib.jose still works in 1.x; its successor is a separate package.
with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from authlib.jose import JsonWebKey, jwt

REDIRECT_URI = "http://127.0.0.1/callback"


def hidden(html, name):
    match = re.search(r'name="%s" value="([^"]*)"' % name, html)
    assert match, f"no {name} in the page"
    return match.group(1)


def post_form(browser, url, page, fields):
    data = {"tx": hidden(page, "tx"), "csrf": hidden(page, "csrf"), **fields}
    return browser.post(url, data=data, allow_redirects=False)


def main(issuer, client_id, client_secret, username, password):
    meta = requests.get(f"{issuer}/.well-known/openid-configuration").json()
    assert meta["code_challenge_methods_supported"] == ["S256"], meta
    client = OAuth2Session(
        client_id,
        client_secret,
        scope="openid profile email",
        redirect_uri=REDIRECT_URI,
        code_challenge_method="S256",
    )
    verifier = generate_token(64)
    nonce = generate_token(20)
    url, state = client.create_authorization_url(
        meta["authorization_endpoint"], code_verifier=verifier, nonce=nonce
    )

    # The user's browser: a cookie jar, redirects looked at rather than followed.
    browser = requests.Session()
    login = browser.get(url, allow_redirects=False)
    assert login.status_code == 200 and 'name="password"' in login.text, login.status_code
    resp = post_form(browser, f"{issuer}/oauth/authorize/login", login.text,
                     {"username": username, "password": password})
    if resp.status_code == 200:  # the consent page
        assert 'name="decision"' in resp.text
        resp = post_form(browser, f"{issuer}/oauth/authorize/consent", resp.text, {"decision": "allow"})
    assert resp.status_code == 303, resp.status_code
    callback = resp.headers["Location"]
    query = parse_qs(urlparse(callback).query)
    assert query["iss"] == [issuer] and query["state"] == [state], query

    token = client.fetch_token(
        meta["token_endpoint"], authorization_response=callback, code_verifier=verifier
    )
    jwks = JsonWebKey.import_key_set(requests.get(meta["jwks_uri"]).json())
    claims = jwt.decode(
        token["id_token"],
        jwks,
        claims_options={"iss": {"essential": True, "value": issuer}, "aud": {"essential": True, "value": client_id}},
    )
    claims.validate()
    assert claims["nonce"] == nonce and claims["amr"] == ["pwd"] and claims["azp"] == client_id, claims

    info = client.get(meta["userinfo_endpoint"]).json()
    assert info["sub"] == claims["sub"] and info["preferred_username"] == username, info

    refreshed = client.refresh_token(meta["token_endpoint"], refresh_token=token["refresh_token"])
    assert refreshed["refresh_token"] != token["refresh_token"]

    active = client.introspect_token(meta["introspection_endpoint"], token=refreshed["access_token"]).json()
    assert active["active"] is True and active["client_id"] == client_id, active
    client.revoke_token(meta["revocation_endpoint"], token=refreshed["refresh_token"],
                        token_type_hint="refresh_token")
    gone = client.introspect_token(meta["introspection_endpoint"], token=refreshed["access_token"]).json()
    assert gone == {"active": False}, gone
    print("authlib: code flow with PKCE, ID token, userinfo, refresh, introspection, revocation: ok")


if __name__ == "__main__":
    main(*sys.argv[1:6])
