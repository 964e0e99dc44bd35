//! Operations endpoints: liveness, readiness, Prometheus metrics, and the landing page.

use poem::web::Data;
use poem_openapi::payload::{Binary, Html, Json, PlainText};
use poem_openapi::{ApiResponse, Object, OpenApi};

use super::ApiTags;
use crate::services::Services;
use crate::telemetry::metrics;

pub struct OpsApi;

#[derive(Object)]
struct Health {
    status: String,
}

#[derive(ApiResponse)]
enum Readiness {
    /// The database answers and takes writes.
    #[oai(status = 200)]
    Ready(Json<Health>),
    /// The database does not answer, or does not take writes (full disk, read-only).
    #[oai(status = 503)]
    NotReady(Json<Health>),
}

#[OpenApi(tag = "ApiTags::Operations")]
impl OpsApi {
    /// Liveness: the process is up.
    #[oai(path = "/healthz", method = "get")]
    async fn healthz(&self) -> Json<Health> {
        Json(Health { status: "ok".into() })
    }

    /// Readiness: the database is reachable and takes writes; answers within a second.
    #[oai(path = "/readyz", method = "get")]
    async fn readyz(&self, Data(svc): Data<&Services>) -> Readiness {
        match svc.db().ready().await {
            Ok(()) => Readiness::Ready(Json(Health { status: "ready".into() })),
            Err(err) => {
                tracing::warn!(error = %err, "readiness check failed");
                Readiness::NotReady(Json(Health { status: "database unavailable".into() }))
            }
        }
    }

    /// Prometheus metrics in the text exposition format
    ///
    /// Requests and latency by route template and status, tokens issued, login, lockout,
    /// MFA and refresh-reuse failures, rate-limit refusals, database pool and password
    /// hasher state. README.md ("Monitoring") lists every metric.
    #[oai(path = "/metrics", method = "get")]
    async fn metrics(&self, Data(svc): Data<&Services>) -> PlainText<String> {
        let pool = svc.db().pool();
        let hasher = svc.hasher();
        // The wait a request would see for a connection right now; no answer within the
        // acquire timeout (an outage) leaves the last sample.
        let started = std::time::Instant::now();
        let acquire_wait = pool.acquire().await.ok().map(|_conn| started.elapsed());
        metrics::sample_resources(
            pool.size(),
            pool.num_idle(),
            acquire_wait,
            hasher.available_permits(),
            hasher.rejected(),
            svc.db().group_commit_totals(),
        );
        PlainText(metrics::render())
    }

    /// A landing page for people who open the server in a browser.
    #[oai(path = "/", method = "get", hidden)]
    async fn landing(&self, Data(svc): Data<&Services>) -> Html<String> {
        Html(landing_page(svc.issuer()))
    }

    /// A small key icon, so browsers stop asking.
    #[oai(path = "/favicon.ico", method = "get", hidden)]
    async fn favicon(&self) -> Favicon {
        Favicon::Ok(Binary(FAVICON_SVG.as_bytes().to_vec()), "public, max-age=86400".into())
    }
}

#[derive(ApiResponse)]
enum Favicon {
    #[oai(status = 200, content_type = "image/svg+xml")]
    Ok(Binary<Vec<u8>>, #[oai(header = "Cache-Control")] String),
}

const FAVICON_SVG: &str = r##"<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 16 16"><circle cx="5" cy="8" r="3.5" fill="none" stroke="#345" stroke-width="2"/><path d="M8.5 8H15M12.5 8v3M15 8v2" stroke="#345" stroke-width="2"/></svg>"##;

/// No script, no outside resources; the issuer is the only text not written here, and it is
/// escaped.
fn landing_page(issuer: &str) -> String {
    let issuer = escape_html(issuer);
    let version = env!("CARGO_PKG_VERSION");
    format!(
        r#"<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>latchkey</title>
<style>body{{font-family:system-ui,sans-serif;max-width:40rem;margin:3rem auto;padding:0 1rem;color:#234}}code{{background:#eef;padding:0 .2rem}}</style>
</head>
<body>
<h1>latchkey</h1>
<p>An OAuth 2.0 / OpenID Connect authorization server, version {version}.</p>
<p>Issuer: <code>{issuer}</code></p>
<ul>
<li><a href="/docs">API documentation</a> (interactive)</li>
<li><a href="/.well-known/openid-configuration">OpenID Connect discovery</a></li>
<li><a href="/.well-known/jwks.json">Signing keys (JWKS)</a></li>
</ul>
</body>
</html>
"#
    )
}

fn escape_html(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_issuer_is_escaped() {
        let page = landing_page("https://a.example/<script>\"'&");
        assert!(page.contains("https://a.example/&lt;script&gt;&quot;&#39;&amp;"));
        assert!(!page.contains("<script>"));
    }
}
