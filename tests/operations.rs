//! Discovery, JWKS, operations endpoints and response hygiene (key rotation: tests/keys.rs).

mod common;

use std::time::Duration;

use common::spawn_app;
use serde_json::{Value, json};

#[tokio::test]
async fn discovery_documents_name_the_issuer_exactly() {
    let app = spawn_app().await;
    for path in ["/.well-known/openid-configuration", "/.well-known/oauth-authorization-server"] {
        let doc: Value = app.get_json(path).await;
        assert_eq!(doc["issuer"], app.base, "{path}");
        assert_eq!(doc["token_endpoint"], app.url("/oauth/token"));
        assert_eq!(doc["introspection_endpoint"], app.url("/oauth/introspect"));
        assert_eq!(doc["revocation_endpoint"], app.url("/oauth/revoke"));
        assert_eq!(doc["userinfo_endpoint"], app.url("/oauth/userinfo"));
        assert_eq!(doc["jwks_uri"], app.url("/.well-known/jwks.json"));
        let grants = doc["grant_types_supported"].as_array().unwrap();
        for g in [
            "password",
            "refresh_token",
            "client_credentials",
            "urn:latchkey:params:oauth:grant-type:mfa-otp",
        ] {
            assert!(grants.contains(&json!(g)), "{g}");
        }
        assert_eq!(doc["id_token_signing_alg_values_supported"], json!(["RS256"]));
    }
}

#[tokio::test]
async fn jwks_publishes_public_parts_only() {
    let app = spawn_app().await;
    let resp = app.http.get(app.url("/.well-known/jwks.json")).send().await.unwrap();
    assert!(resp.headers()["cache-control"].to_str().unwrap().contains("max-age"));
    let jwks: Value = resp.json().await.unwrap();
    let keys = jwks["keys"].as_array().unwrap();
    assert_eq!(keys.len(), 1);
    let key = keys[0].as_object().unwrap();
    let mut names: Vec<&str> = key.keys().map(String::as_str).collect();
    names.sort();
    assert_eq!(names, ["alg", "e", "kid", "kty", "n", "use"], "no private members (d, p, q, dp, dq, qi)");
    assert_eq!(key["alg"], "RS256");
    assert_eq!(key["use"], "sig");
    assert_eq!(key["e"], "AQAB");

    // The key file is private to its owner.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let pem = app.dir.path().join("keys").join(format!("{}.pem", key["kid"].as_str().unwrap()));
        assert_eq!(std::fs::metadata(pem).unwrap().permissions().mode() & 0o777, 0o600);
    }
}

#[tokio::test]
async fn every_response_carries_security_headers() {
    let app = spawn_app().await;
    let requests = [
        app.http.get(app.url("/healthz")),
        app.http.get(app.url("/no/such/path")),
        app.http.post(app.url("/oauth/token")).form(&[("grant_type", "password")]),
        app.http.delete(app.url("/healthz")),
        app.http.get(app.url("/docs")),
        app.http.post(app.url("/oauth/token")).body(vec![b'a'; 100 * 1024]),
    ];
    for req in requests {
        let resp = req.send().await.unwrap();
        let status = resp.status();
        let h = resp.headers();
        assert_eq!(h["x-content-type-options"], "nosniff", "{status}");
        assert_eq!(h["x-frame-options"], "DENY");
        assert_eq!(h["referrer-policy"], "no-referrer");
        assert!(h.contains_key("content-security-policy"));
        assert!(h.contains_key("x-request-id"));
        assert!(!h.contains_key("strict-transport-security"), "no HSTS on an http issuer");
        if !status.is_success() {
            let body: Value = resp.json().await.unwrap_or_else(|_| panic!("{status} body is JSON"));
            assert!(body["error"].is_string(), "{status}: {body}");
        }
    }
    let resp = app.http.get(app.url("/no/such/path")).send().await.unwrap();
    assert_eq!(resp.status(), 404);
    let resp = app.http.post(app.url("/oauth/token")).body(vec![b'a'; 100 * 1024]).send().await.unwrap();
    assert_eq!(resp.status(), 413);
}

#[tokio::test]
async fn https_issuer_turns_on_hsts() {
    let app = common::spawn_app_with(|s| s.issuer = "https://auth.example".parse().unwrap()).await;
    let resp = app.http.get(app.url("/healthz")).send().await.unwrap();
    assert!(resp.headers()["strict-transport-security"].to_str().unwrap().contains("max-age"));
}

#[tokio::test]
async fn operations_endpoints() {
    let app = spawn_app().await;
    let health: Value = app.get_json("/healthz").await;
    assert_eq!(health["status"], "ok");
    let resp = app.http.get(app.url("/readyz")).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    let metrics = app.http.get(app.url("/metrics")).send().await.unwrap().text().await.unwrap();
    assert!(
        metrics.contains(r#"latchkey_http_requests_total{method="GET",route="/readyz",status="200"}"#),
        "{metrics}"
    );
    let spec: Value = app.get_json("/openapi.json").await;
    assert!(spec["paths"]["/oauth/token"]["post"].is_object());
    assert_eq!(spec["servers"][0]["url"], app.base);
    let resp = app.http.get(app.url("/openapi.json")).send().await.unwrap();
    assert_eq!(resp.headers()["content-type"], "application/json");
    let resp = app.http.get(app.url("/openapi.yaml")).send().await.unwrap();
    assert_eq!(resp.headers()["content-type"], "application/x-yaml");
    let yaml = resp.text().await.unwrap();
    assert!(yaml.contains("/oauth/introspect"));
    assert_eq!(yaml, latchkey::http::openapi_document(&app.base, true));
    let docs = app.http.get(app.url("/docs")).send().await.unwrap();
    assert_eq!(docs.status(), 200);
    assert!(docs.text().await.unwrap().contains("swagger"));

    // Readiness follows the database.
    app.svc.db().close().await;
    let resp = app.http.get(app.url("/readyz")).send().await.unwrap();
    assert_eq!(resp.status(), 503);
    let body = resp.text().await.unwrap();
    assert!(!body.contains("sqlite") && !body.contains("postgres"), "no internals: {body}");
}

#[tokio::test]
async fn tokens_in_query_strings_are_refused() {
    let app = spawn_app().await;
    for path in [
        "/oauth/userinfo?access_token=abc",
        "/oauth/token?grant_type=password&username=a&password=b",
        "/oauth/introspect?token=abc",
        "/healthz?client_secret=x",
    ] {
        let resp = app.http.post(app.url(path)).send().await.unwrap();
        assert_eq!(resp.status(), 400, "{path}");
        let body: Value = resp.json().await.unwrap();
        assert_eq!(body["error"], "invalid_request", "{path}");
    }
    assert_eq!(app.http.get(app.url("/healthz?verbose=1")).send().await.unwrap().status(), 200);
}

/// Slow-loris: a client trickling header bytes, each well inside the idle timeout, is cut
/// off once the connection has gone too long without completing a request.
#[tokio::test]
async fn slow_clients_are_cut_off() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let app = common::spawn_app_with(|s| s.slow_client_timeout = Duration::from_secs(2)).await;
    let addr = app.base.trim_start_matches("http://").to_owned();

    // An honest keep-alive client: a request, a pause shorter than the deadline, another.
    let mut honest = tokio::net::TcpStream::connect(&addr).await.unwrap();
    for _ in 0..2 {
        honest.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n").await.unwrap();
        let mut buf = [0u8; 1024];
        let n = honest.read(&mut buf).await.unwrap();
        assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));
        tokio::time::sleep(Duration::from_millis(1500)).await;
    }

    let mut slow = tokio::net::TcpStream::connect(&addr).await.unwrap();
    slow.write_all(b"POST /oauth/token HTTP/1.1\r\nHost: x\r\n").await.unwrap();
    let started = std::time::Instant::now();
    let cut_off = loop {
        assert!(started.elapsed() < Duration::from_secs(20), "the slow client was never cut off");
        tokio::time::sleep(Duration::from_millis(300)).await;
        if slow.write_all(b"X-Trickle: a\r\n").await.is_err() {
            break true;
        }
        let mut buf = [0u8; 64];
        match tokio::time::timeout(Duration::from_millis(10), slow.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => break true,
            _ => {}
        }
    };
    assert!(cut_off);
    assert!(started.elapsed() >= Duration::from_secs(1), "not before the deadline");
}

#[tokio::test]
async fn cors_is_off_by_default_and_follows_the_origin_list() {
    let app = spawn_app().await;
    let resp =
        app.http.get(app.url("/healthz")).header("origin", "https://app.example").send().await.unwrap();
    assert!(!resp.headers().contains_key("access-control-allow-origin"), "off by default");

    let app = common::spawn_app_with(|s| s.cors_origins = vec!["https://app.example".into()]).await;
    let resp =
        app.http.get(app.url("/healthz")).header("origin", "https://app.example").send().await.unwrap();
    assert_eq!(resp.headers()["access-control-allow-origin"], "https://app.example");
    assert!(!resp.headers().contains_key("access-control-allow-credentials"));

    let preflight = app
        .http
        .request(reqwest::Method::OPTIONS, app.url("/oauth/token"))
        .header("origin", "https://app.example")
        .header("access-control-request-method", "POST")
        .header("access-control-request-headers", "authorization, content-type")
        .send()
        .await
        .unwrap();
    assert!(preflight.status().is_success(), "{}", preflight.status());
    assert_eq!(preflight.headers()["access-control-allow-origin"], "https://app.example");
    assert_eq!(preflight.headers()["x-frame-options"], "DENY", "security headers on preflights too");

    let resp =
        app.http.get(app.url("/healthz")).header("origin", "https://evil.example").send().await.unwrap();
    assert!(!resp.headers().contains_key("access-control-allow-origin"), "other origins get nothing");
}

/// Oversized headers are refused before any handler runs (hyper's cap, 431), and JSON
/// nested past serde's recursion limit is a 400, not a crash or a 500.
#[tokio::test]
async fn oversized_headers_and_deep_json_are_refused() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let app = spawn_app().await;
    let addr = app.base.trim_start_matches("http://").to_owned();
    let mut conn = tokio::net::TcpStream::connect(&addr).await.unwrap();
    let mut request = b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: ".to_vec();
    request.extend(std::iter::repeat_n(b'a', 1024 * 1024));
    request.extend(b"\r\n\r\n");
    let _ = conn.write_all(&request).await; // the server may hang up mid-write
    let mut head = [0u8; 64];
    let n = conn.read(&mut head).await.unwrap_or(0);
    let head = String::from_utf8_lossy(&head[..n]);
    assert!(head.is_empty() || head.starts_with("HTTP/1.1 431"), "{head}");

    let deep = format!("{}{}", "[".repeat(5000), "]".repeat(5000));
    let body = format!(r#"{{"username":"abc","email":"a@b.example","password":{deep}}}"#);
    let resp = app
        .http
        .post(app.url("/account/register"))
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    assert_eq!(resp.json::<Value>().await.unwrap()["error"], "invalid_request");
}
