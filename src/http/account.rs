//! Self-service account endpoints: parse, call `crate::account::self_service`, map.

use poem::web::Data;
use poem_openapi::param::Path;
use poem_openapi::payload::Json;
use poem_openapi::types::Example;
use poem_openapi::{ApiResponse, Object, OpenApi};

use super::ApiTags;
use super::auth::{Meta, UserToken};
use super::errors::{AccountErrorResponse, LimitedAccountErrorResponse, PublicAccountErrorResponse};
use crate::account::self_service::{self, Registration};
use crate::model::User;
use crate::services::Services;
use crate::store::sessions::Session;

pub struct AccountApi;

/// A new account.
#[derive(Debug, Object)]
#[oai(example)]
pub struct RegisterRequest {
    /// 3 to 64 letters, digits, `.`, `_`, `-` or `@`; case-insensitive.
    username: String,
    email: String,
    /// At least 8 characters, not one of the 10,000 most common passwords, not containing
    /// the username or email.
    #[oai(write_only)]
    password: String,
}

impl Example for RegisterRequest {
    fn example() -> Self {
        RegisterRequest {
            username: "alice".into(),
            email: "alice@example.com".into(),
            password: "correct horse battery staple".into(),
        }
    }
}

/// The signed-in user (or the one just registered).
#[derive(Debug, Object)]
#[oai(example)]
pub struct AccountUser {
    /// The `sub` of the user's tokens.
    id: String,
    username: String,
    email: String,
    /// Self-registered users get tokens only once this is true.
    email_verified: bool,
    /// `active`, `disabled` or `locked`.
    status: String,
    roles: Vec<String>,
    /// Unix seconds.
    created_at: i64,
    /// Unix seconds of the last successful login.
    #[oai(skip_serializing_if_is_none)]
    last_login_at: Option<i64>,
}

impl From<User> for AccountUser {
    fn from(u: User) -> Self {
        AccountUser {
            id: u.id,
            username: u.username.to_string(),
            email: u.email.to_string(),
            email_verified: u.email_verified,
            status: u.status.as_str().to_owned(),
            roles: u.roles,
            created_at: u.created_at,
            last_login_at: u.last_login_at,
        }
    }
}

impl Example for AccountUser {
    fn example() -> Self {
        AccountUser {
            id: "0b6f3c1e-8d0c-4f55-9a41-2f7d8c4b9e10".into(),
            username: "alice".into(),
            email: "alice@example.com".into(),
            email_verified: false,
            status: "active".into(),
            roles: vec!["user".into()],
            created_at: 1_795_000_000,
            last_login_at: None,
        }
    }
}

/// The token from a verification mail.
#[derive(Debug, Object)]
#[oai(example)]
pub struct VerifyEmailRequest {
    #[oai(write_only)]
    token: String,
}

impl Example for VerifyEmailRequest {
    fn example() -> Self {
        VerifyEmailRequest { token: "Zm9vYmFyYmF6cXV4cXV1eGNvcmdlZ3JhdWx0Z2FycGx5".into() }
    }
}

/// Where to send a password reset token.
#[derive(Debug, Object)]
#[oai(example)]
pub struct ForgotPasswordRequest {
    email: String,
}

impl Example for ForgotPasswordRequest {
    fn example() -> Self {
        ForgotPasswordRequest { email: "alice@example.com".into() }
    }
}

/// The token from a reset mail and the new password.
#[derive(Debug, Object)]
#[oai(example)]
pub struct ResetPasswordRequest {
    #[oai(write_only)]
    token: String,
    #[oai(write_only)]
    new_password: String,
}

impl Example for ResetPasswordRequest {
    fn example() -> Self {
        ResetPasswordRequest {
            token: "Zm9vYmFyYmF6cXV4cXV1eGNvcmdlZ3JhdWx0Z2FycGx5".into(),
            new_password: "a new and long passphrase".into(),
        }
    }
}

#[derive(Debug, Object)]
#[oai(example)]
pub struct ChangePasswordRequest {
    #[oai(write_only)]
    current_password: String,
    #[oai(write_only)]
    new_password: String,
}

impl Example for ChangePasswordRequest {
    fn example() -> Self {
        ChangePasswordRequest {
            current_password: "correct horse battery staple".into(),
            new_password: "a new and long passphrase".into(),
        }
    }
}

/// A session: one login and the refresh tokens rotated from it.
#[derive(Debug, Object)]
#[oai(example)]
pub struct AccountSession {
    /// Pass it to `DELETE /account/sessions/{id}`.
    id: String,
    client_id: String,
    /// Unix seconds of the login.
    created_at: i64,
    /// Unix seconds of the last login or refresh.
    last_used_at: i64,
    /// The client address at login.
    #[oai(skip_serializing_if_is_none)]
    ip: Option<String>,
    /// The `User-Agent` at login.
    #[oai(skip_serializing_if_is_none)]
    user_agent: Option<String>,
    /// True for the session of the token making this request.
    current: bool,
}

impl AccountSession {
    fn new(s: Session, current_sid: &str) -> AccountSession {
        AccountSession {
            current: s.id == current_sid,
            id: s.id,
            client_id: s.client_id,
            created_at: s.created_at,
            last_used_at: s.last_used_at,
            ip: s.ip,
            user_agent: s.user_agent,
        }
    }
}

impl Example for AccountSession {
    fn example() -> Self {
        AccountSession {
            id: "5d1c2a7e-3f4b-4c8d-9e0f-1a2b3c4d5e6f".into(),
            client_id: "web".into(),
            created_at: 1_795_000_000,
            last_used_at: 1_795_003_600,
            ip: Some("203.0.113.7".into()),
            user_agent: Some("Mozilla/5.0".into()),
            current: true,
        }
    }
}

#[derive(ApiResponse)]
pub enum RegisterResponse {
    /// Registered; a verification mail is on its way.
    #[oai(status = 201)]
    Created(Json<AccountUser>),
}

/// A client the user allowed through the consent page.
#[derive(Debug, Object)]
pub struct AccountConsent {
    /// Pass it to `DELETE /account/consents/{client_id}`.
    client_id: String,
    client_name: String,
    /// The scopes allowed.
    scopes: Vec<String>,
    /// Unix seconds of the last time the user allowed something.
    granted_at: i64,
}

#[derive(ApiResponse)]
pub enum Done {
    /// Done.
    #[oai(status = 204)]
    NoContent,
}

#[derive(ApiResponse)]
pub enum Accepted {
    /// Accepted: if the address belongs to an account, a reset mail is on its way.
    #[oai(status = 202)]
    Accepted,
}

type AccountResult<T> = Result<T, AccountErrorResponse>;
type PublicResult<T> = Result<T, PublicAccountErrorResponse>;
type LimitedResult<T> = Result<T, LimitedAccountErrorResponse>;

#[OpenApi(tag = "ApiTags::Account")]
impl AccountApi {
    /// Register
    ///
    /// Creates an account and mails a verification token (valid 24 hours). The account
    /// gets tokens only after `POST /account/email/verify`. Every password policy problem
    /// is listed in `errors`; a taken username or email is 409. Registrations are limited
    /// per client IP (`--rate-limit-register`): 429 with `Retry-After` past the limit.
    #[oai(path = "/account/register", method = "post")]
    async fn register(
        &self,
        Data(svc): Data<&Services>,
        Meta(meta): Meta,
        body: Json<RegisterRequest>,
    ) -> LimitedResult<RegisterResponse> {
        let Json(body) = body;
        let reg = Registration { username: body.username, email: body.email, password: body.password };
        let user = self_service::register(svc, reg, &meta).await?;
        Ok(RegisterResponse::Created(Json(user.into())))
    }

    /// Verify email
    ///
    /// Spends the token from the verification mail. Each token works once.
    #[oai(path = "/account/email/verify", method = "post")]
    async fn verify_email(
        &self,
        Data(svc): Data<&Services>,
        Meta(meta): Meta,
        body: Json<VerifyEmailRequest>,
    ) -> PublicResult<Done> {
        self_service::verify_email(svc, &body.0.token, &meta).await?;
        Ok(Done::NoContent)
    }

    /// Forgot password
    ///
    /// Mails a password reset token (valid 30 minutes) if the address belongs to an
    /// account. The answer is the same either way. Limited per client IP and per address:
    /// 429 with `Retry-After`, decided before the address is looked up.
    #[oai(path = "/account/password/forgot", method = "post")]
    async fn forgot_password(
        &self,
        Data(svc): Data<&Services>,
        Meta(meta): Meta,
        body: Json<ForgotPasswordRequest>,
    ) -> LimitedResult<Accepted> {
        self_service::forgot_password(svc, &body.0.email, &meta).await?;
        Ok(Accepted::Accepted)
    }

    /// Reset password
    ///
    /// Sets a new password with the token from the reset mail, and ends every session of
    /// the account.
    #[oai(path = "/account/password/reset", method = "post")]
    async fn reset_password(
        &self,
        Data(svc): Data<&Services>,
        Meta(meta): Meta,
        body: Json<ResetPasswordRequest>,
    ) -> PublicResult<Done> {
        let Json(body) = body;
        self_service::reset_password(svc, &body.token, body.new_password, &meta).await?;
        Ok(Done::NoContent)
    }

    /// Current user
    #[oai(path = "/account/me", method = "get")]
    async fn me(&self, Data(svc): Data<&Services>, auth: UserToken) -> AccountResult<Json<AccountUser>> {
        let caller = auth.account(svc).await?;
        Ok(Json(self_service::me(svc, &caller.user_id).await?.into()))
    }

    /// Change password
    ///
    /// Needs the current password (403 when wrong). Ends every other session of the
    /// account; the session of this token stays.
    #[oai(path = "/account/password", method = "post")]
    async fn change_password(
        &self,
        Data(svc): Data<&Services>,
        Meta(meta): Meta,
        auth: UserToken,
        body: Json<ChangePasswordRequest>,
    ) -> AccountResult<Done> {
        let caller = auth.account(svc).await?;
        let Json(body) = body;
        self_service::change_password(
            svc,
            &caller.user_id,
            &caller.session_id,
            body.current_password,
            body.new_password,
            &meta,
        )
        .await?;
        Ok(Done::NoContent)
    }

    /// List sessions
    ///
    /// The account's live sessions (refresh-token families), most recently used first.
    #[oai(path = "/account/sessions", method = "get")]
    async fn sessions(
        &self,
        Data(svc): Data<&Services>,
        auth: UserToken,
    ) -> AccountResult<Json<Vec<AccountSession>>> {
        let caller = auth.account(svc).await?;
        let sessions = self_service::sessions(svc, &caller.user_id).await?;
        Ok(Json(sessions.into_iter().map(|s| AccountSession::new(s, &caller.session_id)).collect()))
    }

    /// End a session
    ///
    /// Its refresh tokens stop working and its access tokens introspect inactive. 404
    /// when the session is not the caller's or has already ended.
    #[oai(path = "/account/sessions/:id", method = "delete")]
    async fn end_session(
        &self,
        Data(svc): Data<&Services>,
        Meta(meta): Meta,
        auth: UserToken,
        id: Path<String>,
    ) -> AccountResult<Done> {
        let caller = auth.account(svc).await?;
        self_service::end_session(svc, &caller.user_id, &id.0, &meta).await?;
        Ok(Done::NoContent)
    }

    /// List consents
    ///
    /// The clients the user allowed on the consent page, and the scopes allowed.
    #[oai(path = "/account/consents", method = "get")]
    async fn consents(
        &self,
        Data(svc): Data<&Services>,
        auth: UserToken,
    ) -> AccountResult<Json<Vec<AccountConsent>>> {
        let caller = auth.account(svc).await?;
        let consents = crate::account::consents::list(svc, &caller.user_id).await?;
        Ok(Json(
            consents
                .into_iter()
                .map(|c| AccountConsent {
                    scopes: crate::store::split_words(&c.scope),
                    client_id: c.client_id,
                    client_name: c.client_name,
                    granted_at: c.granted_at,
                })
                .collect(),
        ))
    }

    /// Withdraw a consent
    ///
    /// The client must ask again next time, and the user's sessions with it end now
    /// (refresh and access tokens). 404 when there is no such consent.
    #[oai(path = "/account/consents/:client_id", method = "delete")]
    async fn withdraw_consent(
        &self,
        Data(svc): Data<&Services>,
        Meta(meta): Meta,
        auth: UserToken,
        client_id: Path<String>,
    ) -> AccountResult<Done> {
        let caller = auth.account(svc).await?;
        crate::account::consents::withdraw(svc, &caller.user_id, &client_id.0, &meta).await?;
        Ok(Done::NoContent)
    }

    /// Log out
    ///
    /// Ends the session of this access token: its refresh tokens and its access tokens,
    /// this one included.
    #[oai(path = "/account/logout", method = "post")]
    async fn logout(
        &self,
        Data(svc): Data<&Services>,
        Meta(meta): Meta,
        auth: UserToken,
    ) -> AccountResult<Done> {
        let caller = auth.account(svc).await?;
        self_service::logout(
            svc,
            &caller.user_id,
            &caller.session_id,
            &caller.claims.jti,
            caller.claims.exp,
            &meta,
        )
        .await?;
        Ok(Done::NoContent)
    }
}
