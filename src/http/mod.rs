//! The HTTP layer: routes, OpenAPI document, middleware. Handlers are thin: they parse,
//! call the domain modules and map results; nothing here decides policy.

mod account;
mod admin;
mod auth;
mod discovery;
mod errors;
mod mfa;
mod middleware;
mod oauth;
mod ops;
mod pages;
mod slow_clients;

pub use slow_clients::SlowClientGuard;

use std::sync::Arc;

use poem::http::{HeaderName, Method, header};
use poem::middleware::Cors;
use poem::{Endpoint, EndpointExt, IntoResponse, Route, get, post};
use poem_openapi::{OpenApiService, Tags};

use crate::services::Services;

/// Request bodies larger than this are refused with 413 before they are read.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

#[derive(Tags)]
pub enum ApiTags {
    /// Token, introspection, revocation and userinfo endpoints.
    #[oai(rename = "OAuth")]
    OAuth,
    /// Discovery documents and signing keys.
    Discovery,
    /// TOTP second factor of the signed-in user.
    #[oai(rename = "MFA")]
    Mfa,
    /// Health, readiness and metrics.
    Operations,
    /// Users, clients, signing keys and the audit log; role `admin` only.
    Admin,
    /// Self-service: registration, email verification, passwords, sessions, logout.
    Account,
}

type Apis = (
    oauth::OAuthApi,
    discovery::DiscoveryApi,
    ops::OpsApi,
    account::AccountApi,
    mfa::MfaApi,
    admin::AdminApi,
);

fn api_service(issuer: &str) -> OpenApiService<Apis, ()> {
    OpenApiService::new(
        (
            oauth::OAuthApi,
            discovery::DiscoveryApi,
            ops::OpsApi,
            account::AccountApi,
            mfa::MfaApi,
            admin::AdminApi,
        ),
        "latchkey",
        env!("CARGO_PKG_VERSION"),
    )
    .description(
        "An OAuth 2.0 / OpenID Connect authorization server: password, refresh-token and \
             client-credentials grants, JWT access tokens (RFC 9068; RS256, ES256 or EdDSA), \
             introspection (RFC 7662) and revocation (RFC 7009).",
    )
    .server(issuer)
}

/// The OpenAPI document as `latchkey openapi` prints it; needs no database.
pub fn openapi_document(issuer: &str, yaml: bool) -> String {
    let service = api_service(issuer);
    if yaml { service.spec_yaml() } else { service.spec() }
}

pub fn routes(svc: &Services) -> impl Endpoint + use<> {
    crate::telemetry::metrics::install();
    let service = api_service(svc.issuer());
    let hsts = svc.settings().issuer.scheme() == "https";
    let trusted_proxies: Arc<[ipnet::IpNet]> = svc.settings().trusted_proxies.clone().into();
    let route_names = Arc::new(middleware::RouteNames::from_spec(&service.spec()));
    let docs_page: Arc<str> = docs_page(&service.swagger_ui_html()).into();
    Route::new()
        .at("/openapi.json", service.spec_endpoint())
        .at("/openapi.yaml", service.spec_endpoint_yaml())
        .nest("/docs", service.swagger_ui().around(move |next, req| docs(next, req, docs_page.clone())))
        .at("/oauth/authorize", get(pages::authorize).post(pages::authorize))
        .at("/oauth/authorize/login", post(pages::login))
        .at("/oauth/authorize/second-factor", post(pages::second_factor))
        .at("/oauth/authorize/consent", post(pages::consent))
        .at("/oauth/logout", get(pages::logout).post(pages::logout))
        .at("/assets/latchkey.css", get(pages::stylesheet))
        .nest("/", service)
        .with_if(!svc.settings().cors_origins.is_empty(), cors(&svc.settings().cors_origins))
        .data(svc.clone())
        .around(move |next, req| {
            middleware::around(next, req, trusted_proxies.clone(), route_names.clone(), hsts)
        })
}

/// The client the docs page signs in as (public, code flow with PKCE); the README gives the
/// `client create` line that registers it.
pub const DOCS_CLIENT_ID: &str = "docs";

/// poem-openapi's Swagger UI page, with its Authorize dialog set up for the code flow: PKCE
/// on, the `docs` client filled in. The receiver page of the code flow stays poem-openapi's.
async fn docs(next: Arc<impl Endpoint>, req: poem::Request, page: Arc<str>) -> poem::Result<poem::Response> {
    if req.uri().path() == "/" {
        Ok(poem::web::Html(page.to_string()).into_response())
    } else {
        next.call(req).await.map(IntoResponse::into_response)
    }
}

/// The page's own script comes after the inlined Swagger UI bundle (whose code holds the
/// same words), so the call to set up and the end of the body are the last ones. Should a
/// new poem-openapi change its page, the docs keep working with the password flow (and a
/// test fails).
fn docs_page(swagger_html: &str) -> String {
    let Some((head, call)) = swagger_html.rsplit_once("SwaggerUIBundle({") else {
        return swagger_html.into();
    };
    let Some((call, tail)) = call.rsplit_once("</body>") else { return swagger_html.into() };
    format!(
        "{head}const ui = SwaggerUIBundle({{{call}<script>ui.initOAuth({{clientId: \"{DOCS_CLIENT_ID}\", \
         usePkceWithAuthorizationCodeGrant: true, scopes: \"openid account\"}})</script></body>{tail}"
    )
}

/// Cross-origin calls from the configured browser origins only. Tokens travel in the
/// Authorization header, never in cookies, so credentials stay off.
fn cors(origins: &[String]) -> Cors {
    Cors::new()
        .allow_origins(origins.iter().map(String::as_str))
        .allow_methods([Method::GET, Method::POST, Method::PATCH, Method::DELETE])
        .allow_headers([header::AUTHORIZATION, header::CONTENT_TYPE])
        .expose_headers([
            HeaderName::from_static("x-request-id"),
            header::RETRY_AFTER,
            header::WWW_AUTHENTICATE,
        ])
        .allow_credentials(false)
        .max_age(600)
}
