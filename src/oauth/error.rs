//! OAuth errors as types (RFC 6749 §5.2 and the MFA extensions). The HTTP layer maps them
//! to status codes and JSON in one place.

use crate::store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum OAuthError {
    #[error("{0}")]
    InvalidRequest(String),
    #[error("client authentication failed")]
    InvalidClient,
    #[error("{0}")]
    InvalidGrant(String),
    #[error("{0}")]
    UnauthorizedClient(String),
    #[error("the grant type is not supported")]
    UnsupportedGrantType,
    #[error("{0}")]
    InvalidScope(String),
    #[error("a second factor is required: send the mfa_token with an otp")]
    MfaRequired { mfa_token: String },
    #[error(
        "this client admits only users with a second factor: sign in with a client that does not require one \
         (scope account), enrol at POST /account/mfa/totp and /account/mfa/totp/confirm, then log in here again"
    )]
    MfaEnrollmentRequired,
    #[error("too many requests")]
    TooManyRequests(crate::limits::Limited),
    /// Overloaded for a moment (RFC 6749 §4.1.2.1 `temporarily_unavailable`): 503 with
    /// `Retry-After`.
    #[error("the server is busy; retry in {0} s")]
    TemporarilyUnavailable(u64),
    #[error("internal error")]
    Server(#[source] Box<dyn std::error::Error + Send + Sync>),
}

impl OAuthError {
    /// The `error` member of the JSON body.
    pub fn code(&self) -> &'static str {
        match self {
            OAuthError::InvalidRequest(_) => "invalid_request",
            OAuthError::InvalidClient => "invalid_client",
            OAuthError::InvalidGrant(_) => "invalid_grant",
            OAuthError::UnauthorizedClient(_) => "unauthorized_client",
            OAuthError::UnsupportedGrantType => "unsupported_grant_type",
            OAuthError::InvalidScope(_) => "invalid_scope",
            OAuthError::MfaRequired { .. } => "mfa_required",
            OAuthError::MfaEnrollmentRequired => "mfa_enrollment_required",
            OAuthError::TooManyRequests(_) => "too_many_requests",
            OAuthError::TemporarilyUnavailable(_) => "temporarily_unavailable",
            OAuthError::Server(_) => "server_error",
        }
    }

    pub fn invalid_request(text: impl Into<String>) -> OAuthError {
        OAuthError::InvalidRequest(text.into())
    }

    pub fn invalid_grant(text: impl Into<String>) -> OAuthError {
        OAuthError::InvalidGrant(text.into())
    }

    pub fn server(err: impl std::error::Error + Send + Sync + 'static) -> OAuthError {
        OAuthError::Server(Box::new(err))
    }
}

impl From<StoreError> for OAuthError {
    fn from(err: StoreError) -> Self {
        OAuthError::server(err)
    }
}

impl From<crate::crypto::password::HashError> for OAuthError {
    fn from(err: crate::crypto::password::HashError) -> Self {
        use crate::crypto::password::{BUSY_RETRY_AFTER_SECS, HashError};
        match err {
            HashError::Busy => OAuthError::TemporarilyUnavailable(BUSY_RETRY_AFTER_SECS),
            HashError::Failed => OAuthError::server(err),
        }
    }
}

impl From<crate::limits::LimitError> for OAuthError {
    fn from(err: crate::limits::LimitError) -> Self {
        match err {
            crate::limits::LimitError::Limited(limited) => OAuthError::TooManyRequests(limited),
            crate::limits::LimitError::Store(e) => OAuthError::server(e),
        }
    }
}

impl From<crate::keys::KeyError> for OAuthError {
    fn from(err: crate::keys::KeyError) -> Self {
        OAuthError::server(err)
    }
}

impl From<crate::mfa::MfaError> for OAuthError {
    fn from(err: crate::mfa::MfaError) -> Self {
        OAuthError::server(err)
    }
}

impl From<crate::account::LoginError> for OAuthError {
    fn from(err: crate::account::LoginError) -> Self {
        use crate::account::LoginError;
        match err {
            LoginError::TooManyRequests(limited) => OAuthError::TooManyRequests(limited),
            LoginError::Store(e) => OAuthError::from(e),
            LoginError::Hash(e) => OAuthError::from(e),
            other => OAuthError::invalid_grant(other.to_string()),
        }
    }
}
