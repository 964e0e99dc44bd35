//! Resource owner password credentials (RFC 6749 §4.3).

use super::mfa_otp::{self, SecondFactorDue};
use crate::account::{self, CheckedLogin};
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
    let login = account::check_login(svc, &client.id, username, password, meta).await?;
    let otp = otp.filter(|code| !code.is_empty());
    match next_step(svc, client, &login, scope, requested.is_some(), otp.is_some(), meta).await {
        // The usual login is written with its session: one commit for both.
        Ok(Step::PasswordOnly(scope)) => {
            let auth = UserAuth { amr: vec!["pwd".into()], auth_time: svc.now(), nonce: None };
            issue::start_session_at_login(svc, client, login, scope, auth, meta).await
        }
        // Anything else comes after the lockout has decided, so that a locked account's
        // right password shows nothing.
        Ok(Step::SecondFactor(scope, due)) => {
            let user = login.record(svc, &client.id, meta).await?.user;
            let amr = mfa_otp::after_password(svc, client, &user, due, &scope, otp, meta).await?;
            let auth = UserAuth { amr, auth_time: svc.now(), nonce: None };
            issue::start_session(svc, client, &user, scope, auth, meta).await
        }
        Err(refused) => {
            login.record(svc, &client.id, meta).await?;
            Err(refused)
        }
    }
}

/// What follows a right password: the scope the user may have, and whether a second
/// factor is involved (the policy asks for one, or the client sent a code along).
enum Step {
    PasswordOnly(Scope),
    SecondFactor(Scope, SecondFactorDue),
}

async fn next_step(
    svc: &Services,
    client: &Client,
    login: &CheckedLogin,
    scope: Scope,
    explicit: bool,
    otp_sent: bool,
    meta: &RequestMeta,
) -> Result<Step, OAuthError> {
    let scope = super::scope_for_user(svc, login.user(), scope, explicit).await?;
    let due = mfa_otp::second_factor_due(svc, client, login.user(), login.mfa_enrolled(), &scope, meta).await;
    Ok(if due.required || otp_sent { Step::SecondFactor(scope, due) } else { Step::PasswordOnly(scope) })
}
