//! One wrapper around every request: a request id and tracing span, errors rendered in
//! our JSON shape, security headers on every response (errors and 404s too), the request
//! log line, and the request counters of /metrics.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use ipnet::IpNet;
use poem::PathPattern;
use poem::http::{HeaderValue, header};
use poem::{Endpoint, IntoResponse, Request, Response};
use tracing::Instrument;
use tracing::field::Empty;

use super::MAX_BODY_BYTES;
use super::auth::client_ip;
use super::errors::framework_error;
use crate::telemetry::metrics;

const API_CSP: &str = "default-src 'none'; frame-ancestors 'none'";
// The docs page is Swagger UI, whose bundled page runs inline script and styles.
// The landing page: its one inline style block and the favicon, nothing else.
const LANDING_CSP: &str = "default-src 'none'; style-src 'unsafe-inline'; img-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";
const DOCS_CSP: &str = "default-src 'self'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; frame-ancestors 'none'";

pub async fn around<E: Endpoint>(
    next: Arc<E>,
    mut req: Request,
    trusted_proxies: Arc<[IpNet]>,
    routes: Arc<RouteNames>,
    hsts: bool,
) -> poem::Result<Response> {
    let started = Instant::now();
    let request_id = uuid::Uuid::new_v4().to_string();
    let path = req.uri().path().to_owned();
    let method = req.method().clone();
    let ip = client_ip(&req, &trusted_proxies).map(|ip| ip.to_string());
    // The empty fields are filled in by `crate::telemetry::note_*` as the request runs, and
    // so appear on the "handled" line.
    let span = tracing::info_span!(
        "request",
        id = %request_id,
        method = %method,
        path = %path,
        ip = %ip.as_deref().unwrap_or("unknown"),
        client_id = Empty,
        grant_type = Empty,
        error = Empty,
    );
    let oauth_endpoint = path.starts_with("/oauth/");
    let (mut response, route) = async {
        let (response, route) = match refuse_secrets_in_query(&req).and(read_capped_body(&mut req).await) {
            Err(err) => (framework_error(err, oauth_endpoint), None),
            Ok(()) => match next.call(req).await {
                Ok(r) => {
                    let r = r.into_response();
                    let route = r.data::<PathPattern>().cloned();
                    (r, route)
                }
                Err(err) => {
                    let route = err.data::<PathPattern>().cloned();
                    let r = if err.is_from_response() {
                        err.into_response()
                    } else {
                        framework_error(err, oauth_endpoint)
                    };
                    (r, route)
                }
            },
        };
        tracing::info!(
            status = response.status().as_u16(),
            elapsed_ms = started.elapsed().as_millis() as u64,
            "handled"
        );
        (response, route)
    }
    .instrument(span)
    .await;
    let route = routes.label(route.as_ref());
    metrics::http_request(method.as_str(), route, response.status().as_u16(), started.elapsed());

    let headers = response.headers_mut();
    if let Ok(id) = HeaderValue::from_str(&request_id) {
        headers.insert("x-request-id", id);
    }
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    let csp = match path.as_str() {
        "/" => LANDING_CSP,
        p if p == "/docs" || p.starts_with("/docs/") => DOCS_CSP,
        _ => API_CSP,
    };
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

/// The `route` label of a request: the matched template, never the raw path (ids in paths
/// would make a series per user). poem-openapi matches `/admin/users/:param0`; operators
/// know `/admin/users/{id}` from the API document, so that is the name used.
pub struct RouteNames(HashMap<String, String>);

impl RouteNames {
    /// From the paths of the OpenAPI document (JSON).
    pub fn from_spec(spec: &str) -> RouteNames {
        let spec: serde_json::Value = serde_json::from_str(spec).unwrap_or_default();
        let names = spec["paths"]
            .as_object()
            .into_iter()
            .flat_map(|paths| paths.keys())
            .map(|documented| {
                let mut n = 0;
                let matched: Vec<String> = documented
                    .split('/')
                    .map(|part| {
                        if part.starts_with('{') {
                            n += 1;
                            format!(":param{}", n - 1)
                        } else {
                            part.to_owned()
                        }
                    })
                    .collect();
                (matched.join("/"), documented.clone())
            })
            .collect();
        RouteNames(names)
    }

    fn label<'a>(&'a self, matched: Option<&'a PathPattern>) -> &'a str {
        match matched.map(|p| p.0.as_ref()) {
            None | Some("") => "unmatched",
            Some(pattern) => self.0.get(pattern).map_or(pattern, String::as_str),
        }
    }
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
