//! Every error response is built here, in one pass: a domain error becomes an [`ApiError`]
//! (status, JSON body, the headers that go with it) in exactly one `From` impl per error
//! type — OAuth errors (RFC 6749 §5.2), Bearer errors (RFC 6750 §3), account, MFA and admin
//! errors — and each group of endpoints documents the statuses it can answer with a
//! response enum cut from that one shape by `error_responses!`. Framework errors (parse
//! failures, 404, 405, 413) are answered in the same JSON.

use poem::http::StatusCode;
use poem::{IntoResponse, Response};
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, Object};

use crate::account::AccountError;
use crate::admin::AdminError;
use crate::crypto::password::{BUSY_RETRY_AFTER_SECS, HashError};
use crate::limits::Limited;
use crate::mfa::MfaError;
use crate::oauth::OAuthError;
use crate::oauth::tokens::BearerError;
use crate::store::{self, StoreError};

/// Seconds a client should wait when the database is unavailable: outages seen so far
/// ended, or were noticed, within about that.
const UNAVAILABLE_RETRY_AFTER: u64 = 1;

/// `{"error", "error_description"}`, plus `mfa_token` on `mfa_required`.
#[derive(Debug, Clone, Object)]
pub struct ErrorBody {
    /// A machine-readable error code.
    pub error: String,
    /// A sentence for the developer reading the response.
    #[oai(skip_serializing_if_is_none)]
    pub error_description: Option<String>,
    /// With `mfa_required`: present it to the MFA grant with the code.
    #[oai(skip_serializing_if_is_none)]
    pub mfa_token: Option<String>,
    /// On validation failures: every reason the input was refused.
    #[oai(skip_serializing_if_is_none)]
    pub errors: Option<Vec<String>>,
}

impl ErrorBody {
    pub fn new(error: &str, description: impl Into<String>) -> ErrorBody {
        ErrorBody {
            error: error.to_owned(),
            error_description: Some(description.into()),
            mfa_token: None,
            errors: None,
        }
    }

    /// A 400 body listing every reason.
    pub fn invalid(reasons: Vec<String>) -> ErrorBody {
        ErrorBody { errors: Some(reasons), ..ErrorBody::new("invalid_request", "the input is not valid") }
    }
}

/// An error on its way out: what every domain error is mapped to, once.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    body: ErrorBody,
    /// `WWW-Authenticate`: on 401, and on 403 `insufficient_scope`.
    challenge: Option<String>,
    /// On 429: the budget that ran out, for `Retry-After` and `RateLimit-*`.
    limited: Option<Limited>,
    /// On 503, when not the default: seconds until a retry is worth it.
    retry_after: Option<u64>,
}

impl ApiError {
    fn new(status: StatusCode, code: &str, description: impl Into<String>) -> ApiError {
        ApiError::with_body(status, ErrorBody::new(code, description))
    }

    fn with_body(status: StatusCode, body: ErrorBody) -> ApiError {
        crate::telemetry::note_error(&body.error);
        ApiError { status, body, challenge: None, limited: None, retry_after: None }
    }

    fn challenge(mut self, challenge: String) -> ApiError {
        self.challenge = Some(challenge);
        self
    }

    fn too_many_requests(limited: Limited) -> ApiError {
        let description = format!("too many requests; retry in {} s", limited.retry_after_secs);
        ApiError {
            limited: Some(limited),
            ..ApiError::new(StatusCode::TOO_MANY_REQUESTS, "too_many_requests", description)
        }
    }

    /// Busy for a moment (the password hasher's queue is full): 503 with `Retry-After`.
    fn busy(body: ErrorBody, retry_after: u64) -> ApiError {
        ApiError {
            retry_after: Some(retry_after),
            ..ApiError::with_body(StatusCode::SERVICE_UNAVAILABLE, body)
        }
    }

    fn hasher_busy() -> ApiError {
        ApiError::busy(
            ErrorBody::new("temporarily_unavailable", HashError::Busy.to_string()),
            BUSY_RETRY_AFTER_SECS,
        )
    }

    /// A failure on our side: the detail goes to the log (with the request id), never out.
    /// The database being unavailable for now (unreachable, full, read-only, locked) is 503
    /// `temporarily_unavailable` with `Retry-After`, so clients retry; anything else is 500.
    fn server(err: &(dyn std::error::Error + 'static)) -> ApiError {
        let chain = error_chain(err);
        if database_unavailable(err) {
            tracing::warn!(error = %chain, "database unavailable");
            return ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "temporarily_unavailable",
                "the service is unavailable; retry shortly",
            );
        }
        tracing::error!(error = %chain, "internal error");
        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "server_error", "internal error")
    }

    fn body(self) -> Json<ErrorBody> {
        Json(self.body)
    }

    /// A status the endpoint does not document means a bug: log it, answer 500.
    fn undocumented(self) -> Json<ErrorBody> {
        tracing::error!(status = self.status.as_u16(), error = %self.body.error, "undocumented error status for this endpoint");
        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "server_error", "internal error").body()
    }

    fn rate_limit_headers(&self) -> (u64, u32, u32, u64, String) {
        let l = self.limited.unwrap_or(Limited { retry_after_secs: 1, limit: 0, window_secs: 0 });
        (l.retry_after_secs, l.limit, 0, l.retry_after_secs, format!("{};w={}", l.limit, l.window_secs))
    }
}

impl From<OAuthError> for ApiError {
    fn from(err: OAuthError) -> Self {
        let body = ErrorBody::new(err.code(), err.to_string());
        match err {
            OAuthError::InvalidClient => ApiError::with_body(StatusCode::UNAUTHORIZED, body)
                .challenge(r#"Basic realm="latchkey", charset="UTF-8""#.into()),
            OAuthError::MfaRequired { mfa_token } => {
                ApiError::with_body(StatusCode::FORBIDDEN, ErrorBody { mfa_token: Some(mfa_token), ..body })
            }
            OAuthError::MfaEnrollmentRequired => ApiError::with_body(StatusCode::FORBIDDEN, body),
            OAuthError::TooManyRequests(limited) => ApiError::too_many_requests(limited),
            OAuthError::TemporarilyUnavailable(retry_after) => ApiError::busy(body, retry_after),
            OAuthError::Server(source) => ApiError::server(&*source),
            _ => ApiError::with_body(StatusCode::BAD_REQUEST, body),
        }
    }
}

impl From<BearerError> for ApiError {
    fn from(err: BearerError) -> Self {
        match err {
            BearerError::InvalidToken(_) => {
                ApiError::new(StatusCode::UNAUTHORIZED, "invalid_token", err.to_string())
                    .challenge(r#"Bearer realm="latchkey", error="invalid_token""#.into())
            }
            BearerError::InsufficientScope { scope } => {
                ApiError::new(StatusCode::FORBIDDEN, "insufficient_scope", err.to_string()).challenge(
                    format!(r#"Bearer realm="latchkey", error="insufficient_scope", scope="{scope}""#),
                )
            }
            BearerError::Store(source) => ApiError::server(&source),
        }
    }
}

impl From<AccountError> for ApiError {
    fn from(err: AccountError) -> Self {
        match err {
            AccountError::Invalid(reasons) => {
                ApiError::with_body(StatusCode::BAD_REQUEST, ErrorBody::invalid(reasons))
            }
            AccountError::InvalidToken => {
                ApiError::new(StatusCode::BAD_REQUEST, "invalid_request", err.to_string())
            }
            AccountError::Duplicate(_) => ApiError::new(StatusCode::CONFLICT, "conflict", err.to_string()),
            AccountError::NotFound => ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such resource"),
            AccountError::WrongPassword => {
                ApiError::new(StatusCode::FORBIDDEN, "wrong_password", err.to_string())
            }
            AccountError::RegistrationClosed => {
                ApiError::new(StatusCode::FORBIDDEN, "registration_closed", err.to_string())
            }
            AccountError::TooManyRequests(limited) => ApiError::too_many_requests(limited),
            AccountError::Hash(HashError::Busy) => ApiError::hasher_busy(),
            AccountError::Store(_) | AccountError::Hash(_) => ApiError::server(&err),
        }
    }
}

impl From<MfaError> for ApiError {
    fn from(err: MfaError) -> Self {
        match err {
            MfaError::InvalidCode => ApiError::new(StatusCode::BAD_REQUEST, "invalid_code", err.to_string()),
            MfaError::WrongPassword => {
                ApiError::new(StatusCode::FORBIDDEN, "wrong_password", err.to_string())
            }
            MfaError::NotEnrolled => ApiError::new(StatusCode::NOT_FOUND, "not_found", err.to_string()),
            MfaError::AlreadyEnabled => ApiError::new(StatusCode::CONFLICT, "conflict", err.to_string()),
            MfaError::TooManyRequests(limited) => ApiError::too_many_requests(limited),
            MfaError::Hash(HashError::Busy) => ApiError::hasher_busy(),
            MfaError::Store(_) | MfaError::Hash(_) | MfaError::Unsealable(_) => ApiError::server(&err),
        }
    }
}

impl From<AdminError> for ApiError {
    fn from(err: AdminError) -> Self {
        match err {
            AdminError::Invalid(reasons) => {
                ApiError::with_body(StatusCode::BAD_REQUEST, ErrorBody::invalid(reasons))
            }
            AdminError::NotFound(_) => ApiError::new(StatusCode::NOT_FOUND, "not_found", err.to_string()),
            AdminError::Duplicate(_) => ApiError::new(StatusCode::CONFLICT, "conflict", err.to_string()),
            AdminError::Hash(HashError::Busy) => ApiError::hasher_busy(),
            AdminError::Store(_) | AdminError::Hash(_) | AdminError::Key(_) | AdminError::Mfa(_) => {
                ApiError::server(&err)
            }
        }
    }
}

/// Whether `err` or one of its sources says the database is unavailable. Domain errors wrap
/// StoreError transparently, so the chain may show the sqlx error itself.
fn database_unavailable(err: &(dyn std::error::Error + 'static)) -> bool {
    let mut next = Some(err);
    while let Some(e) = next {
        if e.downcast_ref::<StoreError>().is_some_and(StoreError::is_unavailable)
            || e.downcast_ref::<sqlx::Error>().is_some_and(store::is_unavailable)
        {
            return true;
        }
        next = e.source();
    }
    false
}

/// The error and its sources, for the log (wrappers often say only "internal error").
fn error_chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut text = err.to_string();
    let mut next = err.source();
    while let Some(e) = next {
        let part = e.to_string();
        if !text.ends_with(&part) {
            text = format!("{text}: {part}");
        }
        next = e.source();
    }
    text
}

/// Declares the error responses of a group of endpoints: the statuses it documents, picked
/// from one menu (each with its one description and headers), and `From` impls that route
/// every listed domain error through `ApiError`.
macro_rules! error_responses {
    ($(#[$doc:meta])* pub enum $name:ident { $($variant:ident),+ $(,)? } from $($source:ty),+) => {
        error_responses!(@build e [$(#[$doc])*] $name [$($source),+] [] [] $($variant)+);
    };
    (@build $e:ident $doc:tt $name:ident $sources:tt [$($v:tt)*] [$($arm:tt)*] BadRequest $($rest:ident)*) => {
        error_responses!(@build $e $doc $name $sources [$($v)*
            #[doc = "The request is not valid: `error` names the problem (`invalid_request`, `invalid_grant`, `invalid_scope`, `invalid_code`, …); on validation failures `errors` lists every reason."]
            #[oai(status = 400)]
            BadRequest(Json<ErrorBody>),
        ] [$($arm)* 400 => $name::BadRequest($e.body()),] $($rest)*);
    };
    (@build $e:ident $doc:tt $name:ident $sources:tt [$($v:tt)*] [$($arm:tt)*] Unauthorized $($rest:ident)*) => {
        error_responses!(@build $e $doc $name $sources [$($v)*
            #[doc = "Authentication failed: bad client credentials (`invalid_client`), or a missing, invalid, expired or revoked access token (`invalid_token`)."]
            #[oai(status = 401)]
            Unauthorized(Json<ErrorBody>, #[oai(header = "WWW-Authenticate")] String),
        ] [$($arm)* 401 => $name::Unauthorized(Json($e.body), $e.challenge.unwrap_or_default()),] $($rest)*);
    };
    (@build $e:ident $doc:tt $name:ident $sources:tt [$($v:tt)*] [$($arm:tt)*] Forbidden $($rest:ident)*) => {
        error_responses!(@build $e $doc $name $sources [$($v)*
            #[doc = "Not allowed: the token lacks the scope or the role (`insufficient_scope`, with `WWW-Authenticate` naming the scope), the password is wrong (`wrong_password`), or a second factor is due (`mfa_required` with an `mfa_token`, `mfa_enrollment_required`)."]
            #[oai(status = 403)]
            Forbidden(Json<ErrorBody>, #[oai(header = "WWW-Authenticate")] Option<String>),
        ] [$($arm)* 403 => $name::Forbidden(Json($e.body), $e.challenge),] $($rest)*);
    };
    (@build $e:ident $doc:tt $name:ident $sources:tt [$($v:tt)*] [$($arm:tt)*] NotFound $($rest:ident)*) => {
        error_responses!(@build $e $doc $name $sources [$($v)*
            #[doc = "No such resource, or not yours."]
            #[oai(status = 404)]
            NotFound(Json<ErrorBody>),
        ] [$($arm)* 404 => $name::NotFound($e.body()),] $($rest)*);
    };
    (@build $e:ident $doc:tt $name:ident $sources:tt [$($v:tt)*] [$($arm:tt)*] Conflict $($rest:ident)*) => {
        error_responses!(@build $e $doc $name $sources [$($v)*
            #[doc = "Taken or in the way: a duplicate username, email or client id, or an authenticator that is already active."]
            #[oai(status = 409)]
            Conflict(Json<ErrorBody>),
        ] [$($arm)* 409 => $name::Conflict($e.body()),] $($rest)*);
    };
    (@build $e:ident $doc:tt $name:ident $sources:tt [$($v:tt)*] [$($arm:tt)*] TooManyRequests $($rest:ident)*) => {
        error_responses!(@build $e $doc $name $sources [$($v)*
            #[doc = "Too many attempts; retry after the given seconds."]
            #[oai(status = 429)]
            TooManyRequests(
                Json<ErrorBody>,
                #[doc = "Seconds until a retry can succeed."]
                #[oai(header = "Retry-After")]
                u64,
                #[doc = "Requests allowed per window."]
                #[oai(header = "RateLimit-Limit")]
                u32,
                #[doc = "Requests left in this window: 0."]
                #[oai(header = "RateLimit-Remaining")]
                u32,
                #[doc = "Seconds until the next request is allowed."]
                #[oai(header = "RateLimit-Reset")]
                u64,
                #[doc = "The policy, e.g. `5;w=900`: five per 900 seconds."]
                #[oai(header = "RateLimit-Policy")]
                String,
            ),
        ] [$($arm)* 429 => {
            let (retry_after, limit, remaining, reset, policy) = $e.rate_limit_headers();
            $name::TooManyRequests($e.body(), retry_after, limit, remaining, reset, policy)
        }] $($rest)*);
    };
    (@build $e:ident [$($doc:tt)*] $name:ident [$($source:ty),+] [$($v:tt)*] [$($arm:tt)*]) => {
        $($doc)*
        #[derive(ApiResponse, Debug)]
        pub enum $name {
            $($v)*
            #[doc = "Something failed on the server; the request id in the logs tells what."]
            #[oai(status = 500)]
            ServerError(Json<ErrorBody>),
            #[doc = "Unavailable for a moment (`temporarily_unavailable`): the database is unreachable, or too many password checks are waiting; retry after the given seconds."]
            #[oai(status = 503)]
            Unavailable(
                Json<ErrorBody>,
                #[doc = "Seconds until a retry may succeed."]
                #[oai(header = "Retry-After")]
                u64,
            ),
        }

        impl From<ApiError> for $name {
            fn from($e: ApiError) -> Self {
                match $e.status.as_u16() {
                    $($arm)*
                    500 => $name::ServerError($e.body()),
                    503 => {
                        let retry_after = $e.retry_after.unwrap_or(UNAVAILABLE_RETRY_AFTER);
                        $name::Unavailable($e.body(), retry_after)
                    }
                    _ => $name::ServerError($e.undocumented()),
                }
            }
        }

        $(
            impl From<$source> for $name {
                fn from(err: $source) -> Self {
                    ApiError::from(err).into()
                }
            }
        )+
    };
}

error_responses! {
    /// Error responses of the OAuth endpoints (RFC 6749 §5.2).
    pub enum OAuthErrorResponse { BadRequest, Unauthorized, Forbidden, TooManyRequests } from OAuthError
}

error_responses! {
    /// Error responses of endpoints that take a user's Bearer token (RFC 6750 §3.1).
    pub enum BearerErrorResponse { Unauthorized, Forbidden } from BearerError
}

error_responses! {
    /// Error responses of the account endpoints that take a Bearer token.
    pub enum AccountErrorResponse { BadRequest, Unauthorized, Forbidden, NotFound, TooManyRequests } from AccountError, BearerError
}

error_responses! {
    /// Error responses of the account endpoints open to anyone (verify email, reset password).
    pub enum PublicAccountErrorResponse { BadRequest, Conflict } from AccountError
}

error_responses! {
    /// Error responses of the rate-limited account endpoints open to anyone (register, forgot
    /// password).
    pub enum LimitedAccountErrorResponse { BadRequest, Forbidden, Conflict, TooManyRequests } from AccountError
}

error_responses! {
    /// Error responses of the MFA account endpoints.
    pub enum MfaErrorResponse { BadRequest, Unauthorized, Forbidden, NotFound, Conflict, TooManyRequests } from MfaError, BearerError
}

error_responses! {
    /// Error responses of the admin API.
    pub enum AdminErrorResponse { BadRequest, Unauthorized, Forbidden, NotFound, Conflict } from AdminError, BearerError
}

/// Framework errors (failed parsing, unknown route, body too large …) in our JSON shape.
/// Messages of 5xx errors stay in the log.
pub fn framework_error(err: poem::Error, oauth_endpoint: bool) -> Response {
    let status = err.status();
    let (status, code, description) = match status {
        StatusCode::NOT_FOUND => (status, "not_found", "no such resource".to_owned()),
        StatusCode::METHOD_NOT_ALLOWED => {
            (status, "method_not_allowed", "method not allowed here".to_owned())
        }
        StatusCode::PAYLOAD_TOO_LARGE => {
            (status, "request_too_large", "the request body is too large".to_owned())
        }
        StatusCode::UNAUTHORIZED => (status, "invalid_token", "a Bearer access token is required".to_owned()),
        // A missing or wrong Content-Type is bad input like any other: 400, the status every
        // operation with a body documents (the contract has no 415).
        StatusCode::UNSUPPORTED_MEDIA_TYPE => {
            let expected =
                if oauth_endpoint { "application/x-www-form-urlencoded" } else { "application/json" };
            (StatusCode::BAD_REQUEST, "invalid_request", format!("send {expected}"))
        }
        s if s.is_server_error() => {
            tracing::error!(error = %err, "internal error");
            (StatusCode::INTERNAL_SERVER_ERROR, "server_error", "internal error".to_owned())
        }
        s if s.is_client_error() => (s, "invalid_request", err.to_string()),
        s => (s, "error", "unexpected status".to_owned()),
    };
    crate::telemetry::note_error(code);
    let mut response = Json(ErrorBody::new(code, description)).into_response();
    response.set_status(status);
    if status == StatusCode::UNAUTHORIZED {
        response.headers_mut().insert(
            poem::http::header::WWW_AUTHENTICATE,
            poem::http::HeaderValue::from_static(r#"Bearer realm="latchkey""#),
        );
    }
    response
}
