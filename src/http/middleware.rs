//! One wrapper around every request: a request id and tracing span, errors rendered in
//! our JSON shape, security headers on every response (errors and 404s too), and counts
//! for /metrics.

use std::sync::Arc;
use std::time::Instant;

use poem::http::{HeaderValue, header};
use poem::{Endpoint, IntoResponse, Request, Response};
use tracing::Instrument;

use super::MAX_BODY_BYTES;
use super::errors::framework_error;
use super::ops::Metrics;

const API_CSP: &str = "default-src 'none'; frame-ancestors 'none'";
// The docs page is Swagger UI, whose bundled page runs inline script and styles.
const DOCS_CSP: &str = "default-src 'self'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; frame-ancestors 'none'";

pub async fn around<E: Endpoint>(
    next: Arc<E>,
    mut req: Request,
    metrics: Arc<Metrics>,
    hsts: bool,
) -> poem::Result<Response> {
    let started = Instant::now();
    let request_id = uuid::Uuid::new_v4().to_string();
    let path = req.uri().path().to_owned();
    let method = req.method().clone();
    let span = tracing::info_span!("request", id = %request_id, method = %method, path = %path);
    let oauth_endpoint = path.starts_with("/oauth/");
    let mut response = async {
        let response = match refuse_secrets_in_query(&req).and(read_capped_body(&mut req).await) {
            Err(err) => framework_error(err, oauth_endpoint),
            Ok(()) => match next.call(req).await {
                Ok(r) => r.into_response(),
                Err(err) if err.is_from_response() => err.into_response(),
                Err(err) => framework_error(err, oauth_endpoint),
            },
        };
        tracing::info!(
            status = response.status().as_u16(),
            elapsed_ms = started.elapsed().as_millis() as u64,
            "handled"
        );
        response
    }
    .instrument(span)
    .await;
    metrics.record(response.status().as_u16(), started.elapsed());

    let headers = response.headers_mut();
    if let Ok(id) = HeaderValue::from_str(&request_id) {
        headers.insert("x-request-id", id);
    }
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    let csp = if path == "/docs" || path.starts_with("/docs/") { DOCS_CSP } else { API_CSP };
    // The sign-in pages set their own (they load a stylesheet); every other answer gets ours.
    if !headers.contains_key(header::CONTENT_SECURITY_POLICY) {
        headers.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(csp));
    }
    if hsts {
        headers.insert(
            header::STRICT_TRANSPORT_SECURITY,
            HeaderValue::from_static("max-age=31536000; includeSubDomains"),
        );
    }
    // Tokens and account data must never sit in a cache (RFC 6749 §5.1).
    if oauth_endpoint || path.starts_with("/account/") || path.starts_with("/admin/") {
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        headers.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    }
    Ok(response)
}

/// Reads the body up front, refusing more than `MAX_BODY_BYTES` whether or not the client
/// announced a length (chunked bodies included). Every body latchkey accepts is small.
async fn read_capped_body(req: &mut Request) -> poem::Result<()> {
    let too_large = || poem::Error::from_status(poem::http::StatusCode::PAYLOAD_TOO_LARGE);
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|n| n > MAX_BODY_BYTES) {
        return Err(too_large());
    }
    let body = req.take_body().into_bytes_limit(MAX_BODY_BYTES).await.map_err(|e| match e {
        poem::error::ReadBodyError::PayloadTooLarge => too_large(),
        other => poem::Error::new(other, poem::http::StatusCode::BAD_REQUEST),
    })?;
    let form = req.content_type().is_some_and(|t| t.starts_with("application/x-www-form-urlencoded"));
    if form && !form_is_utf8(&body) {
        // The form parser would swap bad bytes for U+FFFD and let e.g. a password grant run
        // on a string the client never sent.
        return Err(poem::Error::from_string(
            "the form is not valid UTF-8",
            poem::http::StatusCode::BAD_REQUEST,
        ));
    }
    req.set_body(body);
    Ok(())
}

/// Whether every name and value of a urlencoded form decodes to UTF-8.
fn form_is_utf8(body: &[u8]) -> bool {
    body.split(|b| *b == b'&').all(|field| percent_encoding::percent_decode(field).decode_utf8().is_ok())
}

/// Query strings end up in logs, proxies and browser history: credentials and tokens are
/// refused there outright (RFC 6750 §5.3, RFC 9700 §4.3.2) instead of being ignored.
fn refuse_secrets_in_query(req: &Request) -> poem::Result<()> {
    const SECRET_PARAMS: [&str; 7] =
        ["access_token", "refresh_token", "token", "password", "client_secret", "mfa_token", "id_token_hint"];
    // OIDC sends `id_token_hint` by redirect to these two (a browser cannot POST there on
    // its own); an ID token is no credential, only a hint of who is expected.
    let hint_allowed = matches!(req.uri().path(), "/oauth/authorize" | "/oauth/logout");
    let leaked = req.uri().query().is_some_and(|q| {
        url::form_urlencoded::parse(q.as_bytes()).any(|(name, _)| {
            SECRET_PARAMS.contains(&name.as_ref()) && !(hint_allowed && name == "id_token_hint")
        })
    });
    if leaked {
        return Err(poem::Error::from_string(
            "credentials and tokens are not accepted in the query string; send them in the body or a header",
            poem::http::StatusCode::BAD_REQUEST,
        ));
    }
    Ok(())
}
