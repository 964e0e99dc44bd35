//! The one decision "does this login need a second factor?", outside the grant code, so a
//! deployment can add its own rules (per scope, per role, per risk) by swapping the policy:
//! `Services::with_second_factor_policy`.

use std::future::Future;
use std::pin::Pin;

use super::{Client, RequestMeta, Scope, User};

/// What is known when the password has just been verified.
#[derive(Debug, Clone, Copy)]
pub struct LoginContext<'a> {
    pub user: &'a User,
    pub client: &'a Client,
    /// The scope the tokens will carry.
    pub scope: &'a Scope,
    /// The user has a confirmed TOTP authenticator.
    pub enrolled: bool,
    pub meta: &'a RequestMeta,
}

pub type PolicyFuture<'a> = Pin<Box<dyn Future<Output = bool> + Send + 'a>>;

/// Decides whether a login must show a second factor. When it says yes for a user
/// without an authenticator, the token endpoint answers `mfa_enrollment_required`; for an
/// enrolled user, `mfa_required` (or it checks the `otp` sent along). The answer is a
/// future so a rule may consult a database or a risk service; a rule that cannot decide
/// should answer `true` (fail closed).
pub trait SecondFactorPolicy: Send + Sync + 'static {
    fn second_factor_required<'a>(&'a self, login: LoginContext<'a>) -> PolicyFuture<'a>;
}

/// The built-in rule: enrolled users always show their second factor, and a client
/// registered with `--require-mfa` admits only users who can.
#[derive(Debug, Clone, Copy, Default)]
pub struct DefaultPolicy;

impl SecondFactorPolicy for DefaultPolicy {
    fn second_factor_required<'a>(&'a self, login: LoginContext<'a>) -> PolicyFuture<'a> {
        Box::pin(std::future::ready(login.enrolled || login.client.require_mfa))
    }
}
