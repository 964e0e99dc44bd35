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

use std::sync::{Arc, OnceLock};

use poem::endpoint::{BoxEndpoint, make_sync};
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
    let docs = Arc::new(Docs::new(svc.issuer()));
    let (json, yaml, page) = (docs.clone(), docs.clone(), docs);
    Route::new()
        .at("/openapi.json", make_sync(move |_| json.json()))
        .at("/openapi.yaml", make_sync(move |_| yaml.yaml()))
        .nest("/docs", page)
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

/// The OpenAPI document in both forms and the Swagger UI page: about 4 MB of text (the
/// page inlines Swagger UI's bundle), built on first request rather than at start-up, as
/// most servers seldom serve them and every replica pays for what it holds while idle.
struct Docs {
    issuer: String,
    json: OnceLock<String>,
    yaml: OnceLock<String>,
    page: OnceLock<String>,
    /// poem-openapi's Swagger UI endpoint, for the receiver page of the code flow.
    swagger: OnceLock<BoxEndpoint<'static>>,
}

impl Docs {
    fn new(issuer: &str) -> Self {
        Docs {
            issuer: issuer.to_owned(),
            json: OnceLock::new(),
            yaml: OnceLock::new(),
            page: OnceLock::new(),
            swagger: OnceLock::new(),
        }
    }

    fn json(&self) -> poem::Response {
        let spec = self.json.get_or_init(|| openapi_document(&self.issuer, false));
        poem::Response::builder().content_type("application/json").body(spec.clone())
    }

    fn yaml(&self) -> poem::Response {
        let spec = self.yaml.get_or_init(|| openapi_document(&self.issuer, true));
        poem::Response::builder()
            .content_type("application/x-yaml")
            .header(header::CONTENT_DISPOSITION, "inline; filename=\"spec.yaml\"")
            .body(spec.clone())
    }
}

/// poem-openapi's Swagger UI page, with its Authorize dialog set up for the code flow: PKCE
/// on, the `docs` client filled in. The receiver page of the code flow stays poem-openapi's.
impl Endpoint for Docs {
    type Output = poem::Response;

    async fn call(&self, req: poem::Request) -> poem::Result<poem::Response> {
        if req.uri().path() == "/" {
            let page = self.page.get_or_init(|| docs_page(&api_service(&self.issuer).swagger_ui_html()));
            return Ok(poem::web::Html(page.clone()).into_response());
        }
        let swagger =
            self.swagger.get_or_init(|| api_service(&self.issuer).swagger_ui().map_to_response().boxed());
        swagger.call(req).await
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
