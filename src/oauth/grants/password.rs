//! Resource owner password credentials (RFC 6749 §4.3).

use super::mfa_otp;
use crate::account;
use crate::model::Client;
use crate::model::Password;
use crate::model::RequestMeta;
use crate::model::Scope;
use crate::oauth::error::OAuthError;
use crate::oauth::issue::{self, IssuedTokens, UserAuth};
use crate::services::Services;

pub async fn grant(
    svc: &Services,
    client: &Client,
    username: &str,
    password: &Password,
    requested: Option<&Scope>,
    otp: Option<&str>,
    meta: &RequestMeta,
) -> Result<IssuedTokens, OAuthError> {
    let scope = crate::oauth::client::granted_scope(client, requested)?;
    let user = account::verify_login(svc, &client.id, username, password, meta).await?.user;
    let scope = super::scope_for_user(svc, &user, scope, requested.is_some()).await?;
    let amr = mfa_otp::after_password(svc, client, &user, &scope, otp, meta).await?;
    let auth = UserAuth { amr, auth_time: svc.now(), nonce: None };
    issue::start_session(svc, client, &user, scope, auth, meta).await
}
