//! Every error response is built here: OAuth errors (RFC 6749 §5.2), Bearer errors
//! (RFC 6750 §3), and framework errors (parse failures, 404, 405, 413) in the same JSON.

use poem::http::StatusCode;
use poem::{IntoResponse, Response};
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, Object};

use crate::account::AccountError;
use crate::admin::AdminError;
use crate::crypto::password::{BUSY_RETRY_AFTER_SECS, HashError};
use crate::limits::Limited;
use crate::oauth::OAuthError;
use crate::oauth::tokens::BearerError;

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

/// Error responses of the OAuth endpoints.
#[derive(ApiResponse, Debug)]
pub enum OAuthErrorResponse {
    /// The request is malformed, the grant or scope is invalid, or the grant is unsupported.
    #[oai(status = 400)]
    BadRequest(Json<ErrorBody>),
    /// Client authentication failed (`invalid_client`).
    #[oai(status = 401)]
    Unauthorized(Json<ErrorBody>, #[oai(header = "WWW-Authenticate")] String),
    /// `mfa_required` (with an `mfa_token`) or `mfa_enrollment_required`.
    #[oai(status = 403)]
    Forbidden(Json<ErrorBody>),
    /// Too many attempts; retry after the given seconds.
    #[oai(status = 429)]
    TooManyRequests(
        Json<ErrorBody>,
        /// Seconds until a retry can succeed.
        #[oai(header = "Retry-After")]
        u64,
        /// Requests allowed per window.
        #[oai(header = "RateLimit-Limit")]
        u32,
        /// Requests left in this window: 0.
        #[oai(header = "RateLimit-Remaining")]
        u32,
        /// Seconds until the next request is allowed.
        #[oai(header = "RateLimit-Reset")]
        u64,
        /// The policy, e.g. `5;w=900`: five per 900 seconds.
        #[oai(header = "RateLimit-Policy")]
        String,
    ),
    /// Something failed on the server; the request id in the logs tells what.
    #[oai(status = 500)]
    ServerError(Json<ErrorBody>),
    /// Too many password checks are waiting (`temporarily_unavailable`); retry after the
    /// given seconds.
    #[oai(status = 503)]
    ServiceUnavailable(
        Json<ErrorBody>,
        /// Seconds to wait before retrying.
        #[oai(header = "Retry-After")]
        u64,
    ),
}

impl From<OAuthError> for OAuthErrorResponse {
    fn from(err: OAuthError) -> Self {
        let body = ErrorBody::new(err.code(), err.to_string());
        match err {
            OAuthError::InvalidClient => OAuthErrorResponse::Unauthorized(
                Json(body),
                r#"Basic realm="latchkey", charset="UTF-8""#.into(),
            ),
            OAuthError::MfaRequired { mfa_token } => {
                OAuthErrorResponse::Forbidden(Json(ErrorBody { mfa_token: Some(mfa_token), ..body }))
            }
            OAuthError::MfaEnrollmentRequired => OAuthErrorResponse::Forbidden(Json(body)),
            OAuthError::TooManyRequests(l) => {
                let (body, retry_after, limit, remaining, reset, policy) = too_many_requests(body, l);
                OAuthErrorResponse::TooManyRequests(body, retry_after, limit, remaining, reset, policy)
            }
            OAuthError::TemporarilyUnavailable(retry_after) => {
                OAuthErrorResponse::ServiceUnavailable(Json(body), retry_after)
            }
            OAuthError::Server(source) => {
                tracing::error!(error = %source, "internal error");
                OAuthErrorResponse::ServerError(Json(ErrorBody::new("server_error", "internal error")))
            }
            _ => OAuthErrorResponse::BadRequest(Json(body)),
        }
    }
}

/// The body and the `Retry-After`, `RateLimit-Limit`, `-Remaining`, `-Reset` and `-Policy`
/// header values of a 429, in the order of the `TooManyRequests` variants' fields.
fn too_many_requests(body: ErrorBody, l: Limited) -> (Json<ErrorBody>, u64, u32, u32, u64, String) {
    (
        Json(body),
        l.retry_after_secs,
        l.limit,
        0,
        l.retry_after_secs,
        format!("{};w={}", l.limit, l.window_secs),
    )
}

/// Error responses of Bearer-protected endpoints (RFC 6750 §3.1).
#[derive(ApiResponse, Debug)]
pub enum BearerErrorResponse {
    /// The access token is missing, invalid, expired or revoked.
    #[oai(status = 401)]
    Unauthorized(Json<ErrorBody>, #[oai(header = "WWW-Authenticate")] String),
    /// The token lacks the scope or role this endpoint needs.
    #[oai(status = 403)]
    Forbidden(Json<ErrorBody>, #[oai(header = "WWW-Authenticate")] String),
    /// Something failed on the server.
    #[oai(status = 500)]
    ServerError(Json<ErrorBody>),
}

impl From<BearerError> for BearerErrorResponse {
    fn from(err: BearerError) -> Self {
        match err {
            BearerError::InvalidToken => BearerErrorResponse::Unauthorized(
                Json(ErrorBody::new("invalid_token", err.to_string())),
                r#"Bearer realm="latchkey", error="invalid_token""#.into(),
            ),
            BearerError::InsufficientScope => BearerErrorResponse::Forbidden(
                Json(ErrorBody::new("insufficient_scope", err.to_string())),
                r#"Bearer realm="latchkey", error="insufficient_scope""#.into(),
            ),
            BearerError::Store(source) => {
                tracing::error!(error = %source, "internal error");
                BearerErrorResponse::ServerError(Json(ErrorBody::new("server_error", "internal error")))
            }
        }
    }
}

/// Error responses of the MFA account endpoints.
#[derive(ApiResponse, Debug)]
pub enum MfaErrorResponse {
    /// The code is wrong, malformed or already used (`invalid_code`).
    #[oai(status = 400)]
    BadRequest(Json<ErrorBody>),
    /// The access token is missing, invalid, expired or revoked.
    #[oai(status = 401)]
    Unauthorized(Json<ErrorBody>, #[oai(header = "WWW-Authenticate")] String),
    /// The password is not correct (`wrong_password`).
    #[oai(status = 403)]
    Forbidden(Json<ErrorBody>),
    /// No authenticator is enrolled, or none is waiting for confirmation.
    #[oai(status = 404)]
    NotFound(Json<ErrorBody>),
    /// An authenticator is already active; disable it first.
    #[oai(status = 409)]
    Conflict(Json<ErrorBody>),
    /// Too many password checks for this account; retry after the given seconds.
    #[oai(status = 429)]
    TooManyRequests(
        Json<ErrorBody>,
        /// Seconds until a retry can succeed.
        #[oai(header = "Retry-After")]
        u64,
        /// Requests allowed per window.
        #[oai(header = "RateLimit-Limit")]
        u32,
        /// Requests left in this window: 0.
        #[oai(header = "RateLimit-Remaining")]
        u32,
        /// Seconds until the next request is allowed.
        #[oai(header = "RateLimit-Reset")]
        u64,
        /// The policy, e.g. `10;w=900`.
        #[oai(header = "RateLimit-Policy")]
        String,
    ),
    /// Something failed on the server.
    #[oai(status = 500)]
    ServerError(Json<ErrorBody>),
    /// Too many password checks are waiting (`temporarily_unavailable`); retry after the
    /// given seconds.
    #[oai(status = 503)]
    ServiceUnavailable(
        Json<ErrorBody>,
        /// Seconds to wait before retrying.
        #[oai(header = "Retry-After")]
        u64,
    ),
}

impl From<crate::mfa::MfaError> for MfaErrorResponse {
    fn from(err: crate::mfa::MfaError) -> Self {
        use crate::mfa::MfaError;
        let body = |code: &str| Json(ErrorBody::new(code, err.to_string()));
        match &err {
            MfaError::InvalidCode => MfaErrorResponse::BadRequest(body("invalid_code")),
            MfaError::WrongPassword => MfaErrorResponse::Forbidden(body("wrong_password")),
            MfaError::NotEnrolled => MfaErrorResponse::NotFound(body("not_found")),
            MfaError::AlreadyEnabled => MfaErrorResponse::Conflict(body("conflict")),
            MfaError::TooManyRequests(l) => {
                let (body, retry_after, limit, remaining, reset, policy) =
                    too_many_requests(ErrorBody::new("too_many_requests", err.to_string()), *l);
                MfaErrorResponse::TooManyRequests(body, retry_after, limit, remaining, reset, policy)
            }
            MfaError::Hash(HashError::Busy) => {
                MfaErrorResponse::ServiceUnavailable(Json(unavailable_body()), BUSY_RETRY_AFTER_SECS)
            }
            MfaError::Store(_) | MfaError::Hash(_) | MfaError::Unsealable(_) => {
                tracing::error!(error = %err, "internal error");
                MfaErrorResponse::ServerError(Json(ErrorBody::new("server_error", "internal error")))
            }
        }
    }
}

impl From<BearerError> for MfaErrorResponse {
    fn from(err: BearerError) -> Self {
        match BearerErrorResponse::from(err) {
            BearerErrorResponse::Unauthorized(body, challenge) => {
                MfaErrorResponse::Unauthorized(body, challenge)
            }
            BearerErrorResponse::Forbidden(body, _) => MfaErrorResponse::Forbidden(body),
            BearerErrorResponse::ServerError(body) => MfaErrorResponse::ServerError(body),
        }
    }
}

/// Error responses of the account endpoints that take a Bearer token.
#[derive(ApiResponse, Debug)]
pub enum AccountErrorResponse {
    /// Invalid input: `errors` lists every reason.
    #[oai(status = 400)]
    BadRequest(Json<ErrorBody>),
    /// The access token is missing, invalid, expired or revoked.
    #[oai(status = 401)]
    Unauthorized(Json<ErrorBody>, #[oai(header = "WWW-Authenticate")] String),
    /// The current password is wrong.
    #[oai(status = 403)]
    Forbidden(Json<ErrorBody>),
    /// No such resource of the caller's.
    #[oai(status = 404)]
    NotFound(Json<ErrorBody>),
    /// Too many password checks for this account; retry after the given seconds.
    #[oai(status = 429)]
    TooManyRequests(
        Json<ErrorBody>,
        /// Seconds until a retry can succeed.
        #[oai(header = "Retry-After")]
        u64,
        /// Requests allowed per window.
        #[oai(header = "RateLimit-Limit")]
        u32,
        /// Requests left in this window: 0.
        #[oai(header = "RateLimit-Remaining")]
        u32,
        /// Seconds until the next request is allowed.
        #[oai(header = "RateLimit-Reset")]
        u64,
        /// The policy, e.g. `10;w=900`.
        #[oai(header = "RateLimit-Policy")]
        String,
    ),
    /// Something failed on the server.
    #[oai(status = 500)]
    ServerError(Json<ErrorBody>),
    /// Too many password checks are waiting (`temporarily_unavailable`); retry after the
    /// given seconds.
    #[oai(status = 503)]
    ServiceUnavailable(
        Json<ErrorBody>,
        /// Seconds to wait before retrying.
        #[oai(header = "Retry-After")]
        u64,
    ),
}

/// Error responses of the account endpoints open to anyone that are not rate-limited
/// (verify email, reset password).
#[derive(ApiResponse, Debug)]
pub enum PublicAccountErrorResponse {
    /// Invalid input (`errors` lists every reason), or an invalid, expired or used token.
    #[oai(status = 400)]
    BadRequest(Json<ErrorBody>),
    /// The username or email is already taken.
    #[oai(status = 409)]
    Conflict(Json<ErrorBody>),
    /// Something failed on the server.
    #[oai(status = 500)]
    ServerError(Json<ErrorBody>),
    /// Too many password checks are waiting (`temporarily_unavailable`); retry after the
    /// given seconds.
    #[oai(status = 503)]
    ServiceUnavailable(
        Json<ErrorBody>,
        /// Seconds to wait before retrying.
        #[oai(header = "Retry-After")]
        u64,
    ),
}

/// Error responses of the rate-limited account endpoints open to anyone (register, forgot
/// password).
#[derive(ApiResponse, Debug)]
pub enum LimitedAccountErrorResponse {
    /// Invalid input: `errors` lists every reason.
    #[oai(status = 400)]
    BadRequest(Json<ErrorBody>),
    /// The username or email is already taken.
    #[oai(status = 409)]
    Conflict(Json<ErrorBody>),
    /// Too many registrations or reset requests; retry after the given seconds.
    #[oai(status = 429)]
    TooManyRequests(
        Json<ErrorBody>,
        /// Seconds until a retry can succeed.
        #[oai(header = "Retry-After")]
        u64,
        /// Requests allowed per window.
        #[oai(header = "RateLimit-Limit")]
        u32,
        /// Requests left in this window: 0.
        #[oai(header = "RateLimit-Remaining")]
        u32,
        /// Seconds until the next request is allowed.
        #[oai(header = "RateLimit-Reset")]
        u64,
        /// The policy, e.g. `3;w=3600`: three per 3600 seconds.
        #[oai(header = "RateLimit-Policy")]
        String,
    ),
    /// Something failed on the server.
    #[oai(status = 500)]
    ServerError(Json<ErrorBody>),
    /// Too many password checks are waiting (`temporarily_unavailable`); retry after the
    /// given seconds.
    #[oai(status = 503)]
    ServiceUnavailable(
        Json<ErrorBody>,
        /// Seconds to wait before retrying.
        #[oai(header = "Retry-After")]
        u64,
    ),
}

/// The status and body for an account error; server errors are logged here, and only here.
fn account_error(err: AccountError) -> (StatusCode, ErrorBody) {
    match err {
        AccountError::Invalid(reasons) => (StatusCode::BAD_REQUEST, ErrorBody::invalid(reasons)),
        AccountError::InvalidToken => {
            (StatusCode::BAD_REQUEST, ErrorBody::new("invalid_request", err.to_string()))
        }
        AccountError::Duplicate(_) => (StatusCode::CONFLICT, ErrorBody::new("conflict", err.to_string())),
        AccountError::NotFound => (StatusCode::NOT_FOUND, ErrorBody::new("not_found", "no such resource")),
        AccountError::WrongPassword => {
            (StatusCode::FORBIDDEN, ErrorBody::new("wrong_password", err.to_string()))
        }
        // The endpoints that can be limited answer it with the headers (`limited`).
        AccountError::TooManyRequests(_) => {
            (StatusCode::TOO_MANY_REQUESTS, ErrorBody::new("too_many_requests", err.to_string()))
        }
        AccountError::Hash(HashError::Busy) => (StatusCode::SERVICE_UNAVAILABLE, unavailable_body()),
        AccountError::Store(_) | AccountError::Hash(_) => {
            tracing::error!(error = %err, "internal error");
            (StatusCode::INTERNAL_SERVER_ERROR, server_error_body())
        }
    }
}

fn server_error_body() -> ErrorBody {
    ErrorBody::new("server_error", "internal error")
}

fn unavailable_body() -> ErrorBody {
    ErrorBody::new("temporarily_unavailable", HashError::Busy.to_string())
}

/// The 429 of an account error, when it is one.
fn limited(err: &AccountError) -> Option<(Json<ErrorBody>, u64, u32, u32, u64, String)> {
    match err {
        AccountError::TooManyRequests(l) => {
            Some(too_many_requests(ErrorBody::new("too_many_requests", err.to_string()), *l))
        }
        _ => None,
    }
}

/// A status an endpoint does not document means a bug: log it, answer 500.
fn undocumented(status: StatusCode, body: &ErrorBody) -> Json<ErrorBody> {
    tracing::error!(status = status.as_u16(), error = %body.error, "undocumented error status for this endpoint");
    Json(server_error_body())
}

impl From<AccountError> for AccountErrorResponse {
    fn from(err: AccountError) -> Self {
        if let Some((body, retry_after, limit, remaining, reset, policy)) = limited(&err) {
            return AccountErrorResponse::TooManyRequests(body, retry_after, limit, remaining, reset, policy);
        }
        match account_error(err) {
            (StatusCode::BAD_REQUEST, body) => AccountErrorResponse::BadRequest(Json(body)),
            (StatusCode::SERVICE_UNAVAILABLE, body) => {
                AccountErrorResponse::ServiceUnavailable(Json(body), BUSY_RETRY_AFTER_SECS)
            }
            (StatusCode::FORBIDDEN, body) => AccountErrorResponse::Forbidden(Json(body)),
            (StatusCode::NOT_FOUND, body) => AccountErrorResponse::NotFound(Json(body)),
            (StatusCode::INTERNAL_SERVER_ERROR, body) => AccountErrorResponse::ServerError(Json(body)),
            (status, body) => AccountErrorResponse::ServerError(undocumented(status, &body)),
        }
    }
}

impl From<AccountError> for LimitedAccountErrorResponse {
    fn from(err: AccountError) -> Self {
        if let Some((body, retry_after, limit, remaining, reset, policy)) = limited(&err) {
            return LimitedAccountErrorResponse::TooManyRequests(
                body,
                retry_after,
                limit,
                remaining,
                reset,
                policy,
            );
        }
        match PublicAccountErrorResponse::from(err) {
            PublicAccountErrorResponse::BadRequest(body) => LimitedAccountErrorResponse::BadRequest(body),
            PublicAccountErrorResponse::Conflict(body) => LimitedAccountErrorResponse::Conflict(body),
            PublicAccountErrorResponse::ServerError(body) => LimitedAccountErrorResponse::ServerError(body),
            PublicAccountErrorResponse::ServiceUnavailable(body, retry_after) => {
                LimitedAccountErrorResponse::ServiceUnavailable(body, retry_after)
            }
        }
    }
}

impl From<AccountError> for PublicAccountErrorResponse {
    fn from(err: AccountError) -> Self {
        match account_error(err) {
            (StatusCode::BAD_REQUEST, body) => PublicAccountErrorResponse::BadRequest(Json(body)),
            (StatusCode::CONFLICT, body) => PublicAccountErrorResponse::Conflict(Json(body)),
            (StatusCode::SERVICE_UNAVAILABLE, body) => {
                PublicAccountErrorResponse::ServiceUnavailable(Json(body), BUSY_RETRY_AFTER_SECS)
            }
            (StatusCode::INTERNAL_SERVER_ERROR, body) => PublicAccountErrorResponse::ServerError(Json(body)),
            (status, body) => PublicAccountErrorResponse::ServerError(undocumented(status, &body)),
        }
    }
}

impl From<BearerError> for AccountErrorResponse {
    fn from(err: BearerError) -> Self {
        match BearerErrorResponse::from(err) {
            BearerErrorResponse::Unauthorized(body, challenge) => {
                AccountErrorResponse::Unauthorized(body, challenge)
            }
            BearerErrorResponse::Forbidden(body, _) => AccountErrorResponse::Forbidden(body),
            BearerErrorResponse::ServerError(body) => AccountErrorResponse::ServerError(body),
        }
    }
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

/// Error responses of the admin API: Bearer errors (RFC 6750) and domain errors.
#[derive(ApiResponse, Debug)]
pub enum AdminErrorResponse {
    /// The input is not valid; `errors` lists every reason.
    #[oai(status = 400)]
    BadRequest(Json<ErrorBody>),
    /// The access token is missing, invalid, expired or revoked.
    #[oai(status = 401)]
    Unauthorized(Json<ErrorBody>, #[oai(header = "WWW-Authenticate")] String),
    /// The token's user does not have role `admin` (`insufficient_scope`).
    #[oai(status = 403)]
    Forbidden(Json<ErrorBody>, #[oai(header = "WWW-Authenticate")] String),
    /// No such user or client.
    #[oai(status = 404)]
    NotFound(Json<ErrorBody>),
    /// The username, email or client id is taken.
    #[oai(status = 409)]
    Conflict(Json<ErrorBody>),
    /// Something failed on the server.
    #[oai(status = 500)]
    ServerError(Json<ErrorBody>),
    /// Too many password checks are waiting (`temporarily_unavailable`); retry after the
    /// given seconds.
    #[oai(status = 503)]
    ServiceUnavailable(
        Json<ErrorBody>,
        /// Seconds to wait before retrying.
        #[oai(header = "Retry-After")]
        u64,
    ),
}

impl From<BearerError> for AdminErrorResponse {
    fn from(err: BearerError) -> Self {
        match BearerErrorResponse::from(err) {
            BearerErrorResponse::Unauthorized(body, challenge) => {
                AdminErrorResponse::Unauthorized(body, challenge)
            }
            BearerErrorResponse::Forbidden(body, challenge) => AdminErrorResponse::Forbidden(body, challenge),
            BearerErrorResponse::ServerError(body) => AdminErrorResponse::ServerError(body),
        }
    }
}

impl From<AdminError> for AdminErrorResponse {
    fn from(err: AdminError) -> Self {
        match err {
            AdminError::Invalid(reasons) => AdminErrorResponse::BadRequest(Json(ErrorBody::invalid(reasons))),
            AdminError::NotFound(_) => {
                AdminErrorResponse::NotFound(Json(ErrorBody::new("not_found", err.to_string())))
            }
            AdminError::Duplicate(_) => {
                AdminErrorResponse::Conflict(Json(ErrorBody::new("conflict", err.to_string())))
            }
            AdminError::Hash(HashError::Busy) => {
                AdminErrorResponse::ServiceUnavailable(Json(unavailable_body()), BUSY_RETRY_AFTER_SECS)
            }
            AdminError::Store(_) | AdminError::Hash(_) | AdminError::Key(_) | AdminError::Mfa(_) => {
                tracing::error!(error = %err, "internal error");
                AdminErrorResponse::ServerError(Json(ErrorBody::new("server_error", "internal error")))
            }
        }
    }
}
