//! The token endpoint's grants, one file each (RFC 6749 §4.3, §4.4, §6, and the MFA
//! extension grant). They all end in `oauth::issue`, so lifetimes, audiences and claims
//! are decided in one place.

mod authorization_code;
mod client_credentials;
pub mod mfa_otp;
pub(crate) mod password;
mod refresh_token;

use super::client::{self, PresentedClient};
use super::error::OAuthError;
use super::issue::IssuedTokens;
use crate::account;
use crate::model::Password;
use crate::model::RequestMeta;
use crate::model::User;
use crate::model::{GrantType, Scope};
use crate::services::Services;
pub use mfa_otp::SecondFactor;

/// A token request whose parameters have been parsed; what each grant needs, no more.
#[derive(Debug)]
pub enum GrantRequest {
    AuthorizationCode { code: String, redirect_uri: String, code_verifier: String },
    Password { username: String, password: Password, scope: Option<Scope>, otp: Option<String> },
    RefreshToken { refresh_token: String, scope: Option<Scope> },
    ClientCredentials { scope: Option<Scope> },
    MfaOtp { mfa_token: String, factor: SecondFactor },
}

impl GrantRequest {
    pub fn grant_type(&self) -> GrantType {
        match self {
            GrantRequest::AuthorizationCode { .. } => GrantType::AuthorizationCode,
            GrantRequest::Password { .. } => GrantType::Password,
            GrantRequest::RefreshToken { .. } => GrantType::RefreshToken,
            GrantRequest::ClientCredentials { .. } => GrantType::ClientCredentials,
            GrantRequest::MfaOtp { .. } => GrantType::MfaOtp,
        }
    }
}

/// Authenticates the client, checks it may use the grant, and runs the grant.
pub async fn exchange(
    svc: &Services,
    presented: &PresentedClient,
    request: GrantRequest,
    meta: &RequestMeta,
) -> Result<IssuedTokens, OAuthError> {
    let client = client::authenticate(svc, presented).await?;
    if !client.allows(request.grant_type()) {
        return Err(OAuthError::UnauthorizedClient(format!(
            "this client may not use the {} grant",
            request.grant_type()
        )));
    }
    match request {
        GrantRequest::AuthorizationCode { code, redirect_uri, code_verifier } => {
            authorization_code::grant(svc, &client, &code, &redirect_uri, &code_verifier, meta).await
        }
        GrantRequest::Password { username, password, scope, otp } => {
            password::grant(svc, &client, &username, &password, scope.as_ref(), otp.as_deref(), meta).await
        }
        GrantRequest::RefreshToken { refresh_token, scope } => {
            refresh_token::grant(svc, &client, &refresh_token, scope, meta).await
        }
        GrantRequest::ClientCredentials { scope } => {
            client_credentials::grant(svc, &client, scope.as_ref(), meta).await
        }
        GrantRequest::MfaOtp { mfa_token, factor } => {
            mfa_otp::grant(svc, &client, &mfa_token, factor, meta).await
        }
    }
}

/// Limits `scope` to what the user's roles permit. A scope the client asked for explicitly
/// and the user may not have is `invalid_scope`; from a defaulted scope it is dropped.
pub(crate) async fn scope_for_user(
    svc: &Services,
    user: &User,
    scope: Scope,
    explicit: bool,
) -> Result<Scope, OAuthError> {
    let forbidden = account::forbidden_scopes(svc, &user.roles, &scope).await?;
    if forbidden.is_empty() {
        Ok(scope)
    } else if explicit {
        Err(OAuthError::InvalidScope(format!("this user may not have the scope {}", forbidden.join(" "))))
    } else {
        Ok(scope.without(&forbidden))
    }
}
