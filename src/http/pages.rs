//! The hosted sign-in pages: `/oauth/authorize`, its login, second-factor and consent
//! forms, and `/oauth/logout`. Plain HTML forms (no script), rendered from the templates in
//! `templates/` with escaping on; the flow itself is `crate::oauth::authorize`.

use std::collections::HashMap;
use std::sync::LazyLock;

use minijinja::{Environment, context};
use poem::http::{HeaderValue, Method, StatusCode, header};
use poem::web::Data;
use poem::{Request, Response, handler};

use super::auth::Meta;
use crate::oauth::authorize::{
    self as flow, AuthorizeParams, Failure, FormBase, FormContext, Outcome, Page, Step,
};
use crate::services::Services;

static TEMPLATES: LazyLock<Environment<'static>> = LazyLock::new(|| {
    let mut env = Environment::new();
    for (name, source) in [
        ("base.html", include_str!("../../templates/base.html")),
        ("login.html", include_str!("../../templates/login.html")),
        ("second_factor.html", include_str!("../../templates/second_factor.html")),
        ("consent.html", include_str!("../../templates/consent.html")),
        ("error.html", include_str!("../../templates/error.html")),
        ("signed_out.html", include_str!("../../templates/signed_out.html")),
    ] {
        env.add_template(name, source).expect("the built-in templates parse");
    }
    env
});

const STYLESHEET: &str = include_str!("../../templates/latchkey.css");

/// The cookie's name: with an https issuer, `__Host-` pins it to this host, path `/` and
/// `Secure` (RFC 6265bis §4.1.3.2).
fn cookie_name(svc: &Services) -> &'static str {
    if secure(svc) { "__Host-latchkey_session" } else { "latchkey_session" }
}

fn secure(svc: &Services) -> bool {
    svc.settings().issuer.scheme() == "https"
}

fn read_cookie(svc: &Services, req: &Request) -> Option<String> {
    let name = cookie_name(svc);
    req.headers()
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(n, _)| *n == name)
        .map(|(_, v)| v.to_owned())
}

fn set_cookie(svc: &Services, value: &str, max_age: Option<i64>) -> String {
    let mut cookie = format!("{}={value}; Path=/; HttpOnly; SameSite=Lax", cookie_name(svc));
    if let Some(age) = max_age {
        cookie.push_str(&format!("; Max-Age={age}"));
    }
    if secure(svc) {
        cookie.push_str("; Secure");
    }
    cookie
}

/// The pages load only our stylesheet (and the configured one); no script, no frames.
fn content_security_policy(svc: &Services) -> String {
    let extra = svc
        .settings()
        .stylesheet_url
        .as_ref()
        .map(|u| format!(" {}", u.origin().ascii_serialization()))
        .unwrap_or_default();
    format!(
        "default-src 'none'; style-src 'self'{extra}; img-src 'self' data:; base-uri 'none'; frame-ancestors 'none'"
    )
}

fn render(svc: &Services, template: &str, ctx: minijinja::Value, status: StatusCode) -> Response {
    let settings = svc.settings();
    let base = context! {
        product => &settings.product_name,
        stylesheet => settings.stylesheet_url.as_ref().map(|u| u.to_string()),
    };
    let body = TEMPLATES.get_template(template).and_then(|t| t.render(context! { ..ctx, ..base }));
    let (status, body) = match body {
        Ok(body) => (status, body),
        Err(err) => {
            tracing::error!(error = %err, template, "template failed");
            (StatusCode::INTERNAL_SERVER_ERROR, "internal error".to_owned())
        }
    };
    let mut response = Response::builder().status(status).content_type("text/html; charset=utf-8").body(body);
    if let Ok(csp) = HeaderValue::from_str(&content_security_policy(svc)) {
        response.headers_mut().insert(header::CONTENT_SECURITY_POLICY, csp);
    }
    response
}

fn form_context(form: &FormContext) -> minijinja::Value {
    context! { tx => &form.tx, csrf => &form.csrf, client_name => &form.client_name }
}

fn respond(svc: &Services, outcome: Outcome, method: &Method) -> Response {
    let mut response = match outcome.step {
        Step::Redirect(location) => {
            // 303 after a form post, so the browser follows with GET.
            let status = if method == Method::POST { StatusCode::SEE_OTHER } else { StatusCode::FOUND };
            Response::builder().status(status).header(header::LOCATION, location).finish()
        }
        Step::Error(failure, message) => {
            let status = match failure {
                Failure::BadRequest => StatusCode::BAD_REQUEST,
                Failure::Forbidden => StatusCode::FORBIDDEN,
                Failure::Server => StatusCode::INTERNAL_SERVER_ERROR,
            };
            render(svc, "error.html", context! { message }, status)
        }
        Step::Show(page, form) => {
            let (template, ctx, limited) = match page {
                Page::Login { username, error, limited } => {
                    ("login.html", context! { username, error, ..form_context(&form) }, limited)
                }
                Page::SecondFactor { error, limited } => {
                    ("second_factor.html", context! { error, ..form_context(&form) }, limited)
                }
                Page::Consent { scopes } => {
                    ("consent.html", context! { scopes, ..form_context(&form) }, None)
                }
            };
            let status = if limited.is_some() { StatusCode::TOO_MANY_REQUESTS } else { StatusCode::OK };
            let mut response = render(svc, template, ctx, status);
            if let Some(limited) = limited {
                response.headers_mut().insert(header::RETRY_AFTER, limited.retry_after_secs.into());
            }
            response
        }
    };
    if let Some(value) = outcome.set_cookie
        && let Ok(cookie) = HeaderValue::from_str(&set_cookie(svc, &value, None))
    {
        response.headers_mut().append(header::SET_COOKIE, cookie);
    }
    response
}

/// Name/value pairs of a query string or an `application/x-www-form-urlencoded` body.
fn pairs(bytes: &[u8]) -> Vec<(String, String)> {
    url::form_urlencoded::parse(bytes).into_owned().collect()
}

fn form_fields(body: &[u8]) -> HashMap<String, String> {
    pairs(body).into_iter().collect()
}

/// The authorization request's parameters: the query of a GET, the form of a POST.
fn request_pairs(req: &Request, body: &[u8]) -> Vec<(String, String)> {
    if req.method() == Method::POST { pairs(body) } else { pairs(req.uri().query().unwrap_or("").as_bytes()) }
}

/// `GET`/`POST /oauth/authorize`.
#[handler]
pub async fn authorize(
    req: &Request,
    body: Vec<u8>,
    Data(svc): Data<&Services>,
    Meta(meta): Meta,
) -> Response {
    let params = match AuthorizeParams::from_pairs(request_pairs(req, &body)) {
        Ok(params) => params,
        Err(reason) => {
            let outcome = Outcome { step: Step::Error(Failure::BadRequest, reason), set_cookie: None };
            return respond(svc, outcome, req.method());
        }
    };
    let outcome = flow::authorize(svc, read_cookie(svc, req).as_deref(), params, &meta).await;
    respond(svc, outcome, req.method())
}

fn form_base(svc: &Services, req: &Request, fields: &mut HashMap<String, String>) -> FormBase {
    FormBase {
        cookie: read_cookie(svc, req),
        tx: fields.remove("tx").unwrap_or_default(),
        csrf: fields.remove("csrf").unwrap_or_default(),
    }
}

/// `POST /oauth/authorize/login`.
#[handler]
pub async fn login(req: &Request, body: Vec<u8>, Data(svc): Data<&Services>, Meta(meta): Meta) -> Response {
    let mut fields = form_fields(&body);
    let base = form_base(svc, req, &mut fields);
    let field = |name: &str| fields.get(name).map(String::as_str).unwrap_or("");
    let outcome = flow::submit_login(svc, base, field("username"), field("password"), &meta).await;
    respond(svc, outcome, req.method())
}

/// `POST /oauth/authorize/second-factor`.
#[handler]
pub async fn second_factor(
    req: &Request,
    body: Vec<u8>,
    Data(svc): Data<&Services>,
    Meta(meta): Meta,
) -> Response {
    let mut fields = form_fields(&body);
    let base = form_base(svc, req, &mut fields);
    let (otp, recovery) = (fields.remove("otp"), fields.remove("recovery_code"));
    let outcome = flow::submit_second_factor(svc, base, otp, recovery, &meta).await;
    respond(svc, outcome, req.method())
}

/// `POST /oauth/authorize/consent`.
#[handler]
pub async fn consent(req: &Request, body: Vec<u8>, Data(svc): Data<&Services>, Meta(meta): Meta) -> Response {
    let mut fields = form_fields(&body);
    let base = form_base(svc, req, &mut fields);
    let decision = fields.remove("decision").unwrap_or_default();
    let outcome = flow::submit_consent(svc, base, &decision, &meta).await;
    respond(svc, outcome, req.method())
}

/// `GET`/`POST /oauth/logout` (OIDC RP-Initiated Logout 1.0).
#[handler]
pub async fn logout(req: &Request, body: Vec<u8>, Data(svc): Data<&Services>, Meta(meta): Meta) -> Response {
    let fields: HashMap<String, String> = request_pairs(req, &body).into_iter().collect();
    let field = |name: &str| fields.get(name).map(String::as_str).filter(|v| !v.is_empty());
    let cookie = read_cookie(svc, req);
    let result = flow::logout(
        svc,
        cookie.as_deref(),
        field("id_token_hint"),
        field("client_id"),
        field("post_logout_redirect_uri"),
        field("state"),
        &meta,
    )
    .await;
    let mut response = match result {
        Ok(outcome) => match outcome.redirect {
            Some(location) => {
                let status =
                    if req.method() == Method::POST { StatusCode::SEE_OTHER } else { StatusCode::FOUND };
                Response::builder().status(status).header(header::LOCATION, location).finish()
            }
            None => render(svc, "signed_out.html", context! {}, StatusCode::OK),
        },
        Err(err) => {
            tracing::error!(error = %err, "logout failed");
            let message = "Something went wrong on our side. Please try again.";
            render(svc, "error.html", context! { message }, StatusCode::INTERNAL_SERVER_ERROR)
        }
    };
    if cookie.is_some()
        && let Ok(clear) = HeaderValue::from_str(&set_cookie(svc, "", Some(0)))
    {
        response.headers_mut().append(header::SET_COOKIE, clear);
    }
    response
}

/// `GET /assets/latchkey.css`.
#[handler]
pub async fn stylesheet() -> Response {
    Response::builder()
        .content_type("text/css; charset=utf-8")
        .header(header::CACHE_CONTROL, "public, max-age=3600")
        .body(STYLESHEET)
}
