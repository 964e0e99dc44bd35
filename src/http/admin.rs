//! The admin API (`/admin/…`): parse, authorize, call `crate::admin`, map the result.
//! Every route needs a user token whose user holds role `admin` right now.

use poem::web::Data;
use poem_openapi::param::{Path, Query};
use poem_openapi::payload::Json;
use poem_openapi::types::Example;
use poem_openapi::{ApiResponse, Object, OpenApi};

use super::ApiTags;
use super::auth::{Meta, UserToken};
use super::errors::AdminErrorResponse;
use crate::admin::{self, AdminError, audit, clients, users};
use crate::config::SigningAlg;
use crate::keys::{KeyInfo, KeyState};
use crate::model::Client;
use crate::model::User;
use crate::model::UserStatus;
use crate::oauth::client::RegisteredClient;
use crate::services::Services;
use crate::store::audit::AuditRecord;

pub struct AdminApi;

type AdminResult<T> = Result<T, AdminErrorResponse>;

/// A user as administrators see it: never a password hash.
#[derive(Debug, Object)]
pub struct AdminUser {
    /// The `sub` of the user's tokens.
    id: String,
    username: String,
    email: String,
    email_verified: bool,
    /// `active`, `disabled` or `locked`.
    status: String,
    roles: Vec<String>,
    /// Unix seconds; set while a lockout lasts.
    #[oai(skip_serializing_if_is_none)]
    locked_until: Option<i64>,
    #[oai(skip_serializing_if_is_none)]
    last_login_at: Option<i64>,
    created_at: i64,
    updated_at: i64,
    /// The user has a confirmed TOTP authenticator; `POST /admin/users/{id}/mfa/reset`
    /// removes it.
    mfa_enabled: bool,
}

impl AdminUser {
    fn new(u: User, mfa_enabled: bool) -> Self {
        AdminUser {
            username: u.username.to_string(),
            email: u.email.to_string(),
            email_verified: u.email_verified,
            status: u.status.as_str().to_owned(),
            roles: u.roles,
            locked_until: u.locked_until,
            last_login_at: u.last_login_at,
            created_at: u.created_at,
            updated_at: u.updated_at,
            mfa_enabled,
            id: u.id,
        }
    }
}

/// One user for an answer, with their MFA state.
async fn admin_user(svc: &Services, user: User) -> AdminResult<AdminUser> {
    let mfa_enabled = users::mfa_enabled(svc, &user.id).await?;
    Ok(AdminUser::new(user, mfa_enabled))
}

/// One page of users, by username; pass `next_cursor` as `cursor` for the next.
#[derive(Debug, Object)]
pub struct UserPage {
    items: Vec<AdminUser>,
    #[oai(skip_serializing_if_is_none)]
    next_cursor: Option<String>,
}

/// A user to create; they can log in at once (the email counts as verified).
#[derive(Debug, Object)]
#[oai(example, deny_unknown_fields)]
pub struct CreateUserBody {
    username: String,
    email: String,
    /// Subject to the password policy; never returned.
    password: String,
    /// Default `["user"]`.
    roles: Option<Vec<String>>,
}

impl Example for CreateUserBody {
    fn example() -> Self {
        CreateUserBody {
            username: "alice".into(),
            email: "alice@example.com".into(),
            password: "a long passphrase nobody guesses".into(),
            roles: Some(vec!["user".into()]),
        }
    }
}

/// Fields to change; absent ones stay as they are.
#[derive(Debug, Object)]
#[oai(example, deny_unknown_fields)]
pub struct UserPatchBody {
    email: Option<String>,
    /// Replaces all roles.
    roles: Option<Vec<String>>,
    /// `active`, `disabled` or `locked`; anything but `active` ends every session.
    status: Option<String>,
}

impl Example for UserPatchBody {
    fn example() -> Self {
        UserPatchBody { email: None, roles: Some(vec!["user".into(), "admin".into()]), status: None }
    }
}

/// How many live sessions were ended.
/// A new password set by an administrator.
#[derive(Debug, Object)]
#[oai(deny_unknown_fields)]
pub struct SetPasswordBody {
    /// The password policy of registration applies.
    #[oai(write_only)]
    password: String,
}

#[derive(Debug, Object)]
pub struct RevokedSessions {
    revoked: u64,
}

/// A client; `client_secret` only in the answers of create and rotate-secret, once.
#[derive(Debug, Object)]
pub struct AdminClient {
    client_id: String,
    #[oai(skip_serializing_if_is_none)]
    client_secret: Option<String>,
    name: String,
    /// A public client has no secret.
    public: bool,
    grants: Vec<String>,
    scopes: Vec<String>,
    audiences: Vec<String>,
    require_mfa: bool,
    /// Where the authorization_code grant may send the browser back.
    redirect_uris: Vec<String>,
    /// Where RP-initiated logout may send the browser.
    post_logout_redirect_uris: Vec<String>,
    /// Its users are not asked for consent.
    first_party: bool,
}

impl From<RegisteredClient> for AdminClient {
    fn from(c: RegisteredClient) -> Self {
        AdminClient {
            client_id: c.client_id,
            client_secret: c.client_secret,
            name: c.name,
            public: c.public,
            grants: c.grants,
            scopes: c.scopes,
            audiences: c.audiences,
            require_mfa: c.require_mfa,
            redirect_uris: c.redirect_uris,
            post_logout_redirect_uris: c.post_logout_redirect_uris,
            first_party: c.first_party,
        }
    }
}

impl From<&Client> for AdminClient {
    fn from(c: &Client) -> Self {
        RegisteredClient::new(c, None).into()
    }
}

/// A client to register.
#[derive(Debug, Object)]
#[oai(example, deny_unknown_fields)]
pub struct CreateClientBody {
    name: String,
    /// Default: random.
    client_id: Option<String>,
    /// A public client (no secret), e.g. a mobile app. Default false.
    public: Option<bool>,
    /// Default `["password", "refresh_token"]`.
    grants: Option<Vec<String>>,
    scopes: Option<Vec<String>>,
    /// `aud` of its access tokens.
    audiences: Option<Vec<String>>,
    /// Refuse users without a second factor. Default false.
    require_mfa: Option<bool>,
    /// Required with the `authorization_code` grant; matched exactly, except that a
    /// loopback `http://127.0.0.1/…` or `http://[::1]/…` URI matches any port.
    redirect_uris: Option<Vec<String>>,
    /// Where `/oauth/logout` may send the browser afterwards.
    post_logout_redirect_uris: Option<Vec<String>>,
    /// Skip the consent page for this client's users. Default false.
    first_party: Option<bool>,
}

impl Example for CreateClientBody {
    fn example() -> Self {
        CreateClientBody {
            name: "Web shop".into(),
            client_id: Some("web-shop".into()),
            public: Some(false),
            grants: Some(vec!["authorization_code".into(), "refresh_token".into()]),
            scopes: Some(vec!["openid".into(), "profile".into(), "email".into()]),
            audiences: Some(vec!["https://api.example.com".into()]),
            require_mfa: Some(false),
            redirect_uris: Some(vec!["https://shop.example.com/callback".into()]),
            post_logout_redirect_uris: Some(vec!["https://shop.example.com/".into()]),
            first_party: Some(false),
        }
    }
}

/// Fields to change; absent ones stay as they are.
#[derive(Debug, Object)]
#[oai(example, deny_unknown_fields)]
pub struct ClientPatchBody {
    name: Option<String>,
    grants: Option<Vec<String>>,
    scopes: Option<Vec<String>>,
    audiences: Option<Vec<String>>,
    require_mfa: Option<bool>,
    redirect_uris: Option<Vec<String>>,
    post_logout_redirect_uris: Option<Vec<String>>,
    first_party: Option<bool>,
}

impl Example for ClientPatchBody {
    fn example() -> Self {
        ClientPatchBody {
            name: None,
            grants: None,
            scopes: Some(vec!["openid".into(), "api".into()]),
            audiences: None,
            require_mfa: Some(true),
            redirect_uris: None,
            post_logout_redirect_uris: None,
            first_party: None,
        }
    }
}

/// A signing key: public facts only. Times are Unix seconds.
#[derive(Debug, Object)]
pub struct AdminKey {
    kid: String,
    /// `RS256`, `ES256` or `EdDSA`.
    alg: String,
    /// `pending` (published, signing from `signs_from`), `signing`, `verifying` (published
    /// until `retire_at`) or `retired`.
    state: String,
    /// Published in the JWKS from here on.
    created_at: i64,
    /// Signs from here on (once every cached JWKS lists it).
    signs_from: i64,
    /// Leaves the JWKS here, once the last token it signed has expired.
    #[oai(skip_serializing_if_is_none)]
    retire_at: Option<i64>,
}

impl From<KeyInfo> for AdminKey {
    fn from(k: KeyInfo) -> Self {
        let state = match k.state {
            KeyState::Pending => "pending",
            KeyState::Signing => "signing",
            KeyState::Verifying => "verifying",
            KeyState::Retired => "retired",
        };
        AdminKey {
            kid: k.kid,
            alg: k.alg.to_string(),
            state: state.into(),
            created_at: k.created_at,
            signs_from: k.signs_from,
            retire_at: k.retire_at,
        }
    }
}

/// One audit record.
#[derive(Debug, Object)]
pub struct AuditEventBody {
    /// UUIDv7: sorts by time.
    id: String,
    /// Unix seconds.
    at: i64,
    /// e.g. `login`, `token_revoked`, `admin_user_disable`.
    event: String,
    outcome: String,
    /// Who acted (a user id), when known.
    #[oai(skip_serializing_if_is_none)]
    actor_id: Option<String>,
    /// The user acted upon.
    #[oai(skip_serializing_if_is_none)]
    user_id: Option<String>,
    #[oai(skip_serializing_if_is_none)]
    client_id: Option<String>,
    #[oai(skip_serializing_if_is_none)]
    ip: Option<String>,
    #[oai(skip_serializing_if_is_none)]
    user_agent: Option<String>,
    #[oai(skip_serializing_if_is_none)]
    detail: Option<String>,
}

impl From<AuditRecord> for AuditEventBody {
    fn from(r: AuditRecord) -> Self {
        AuditEventBody {
            id: r.id,
            at: r.at,
            event: r.event,
            outcome: r.outcome,
            actor_id: r.actor_id,
            user_id: r.user_id,
            client_id: r.client_id,
            ip: r.ip,
            user_agent: r.user_agent,
            detail: r.detail,
        }
    }
}

/// One page of audit records, newest first; pass `next_cursor` as `cursor` for older ones.
#[derive(Debug, Object)]
pub struct AuditPage {
    items: Vec<AuditEventBody>,
    #[oai(skip_serializing_if_is_none)]
    next_cursor: Option<String>,
}

#[derive(ApiResponse)]
pub enum UserCreated {
    /// The user was created.
    #[oai(status = 201)]
    Created(Json<AdminUser>),
}

#[derive(ApiResponse)]
pub enum ClientWithSecret {
    /// The client was registered; a confidential client's secret is shown this once.
    #[oai(status = 201)]
    Created(Json<AdminClient>, #[oai(header = "Cache-Control")] String),
    /// The new secret, shown this once; the old one no longer works.
    #[oai(status = 200)]
    Rotated(Json<AdminClient>, #[oai(header = "Cache-Control")] String),
}

#[derive(ApiResponse)]
pub enum Deleted {
    /// Deleted.
    #[oai(status = 204)]
    NoContent,
}

#[derive(ApiResponse)]
pub enum MfaReset {
    /// The user has no second factor now.
    #[oai(status = 204)]
    NoContent,
}

#[OpenApi(tag = "ApiTags::Admin")]
impl AdminApi {
    /// List users
    ///
    /// Ordered by username. `q` matches a substring of the username or email; `status`
    /// is `active`, `disabled` or `locked`; `limit` is 1 to 200 (default 50).
    #[allow(clippy::too_many_arguments)]
    #[oai(path = "/admin/users", method = "get")]
    async fn list_users(
        &self,
        Data(svc): Data<&Services>,
        Meta(meta): Meta,
        auth: UserToken,
        q: Query<Option<String>>,
        status: Query<Option<String>>,
        limit: Query<Option<i64>>,
        cursor: Query<Option<String>>,
    ) -> AdminResult<Json<UserPage>> {
        auth.admin(svc, meta).await?;
        let filter = users::UserFilter { q: q.0, status: status.0, limit: limit.0, cursor: cursor.0 };
        let page = users::list(svc, &filter).await?;
        let with_mfa = users::mfa_enabled_among(svc, &page.items).await?;
        Ok(Json(UserPage {
            items: page
                .items
                .into_iter()
                .map(|u| {
                    let mfa_enabled = with_mfa.contains(&u.id);
                    AdminUser::new(u, mfa_enabled)
                })
                .collect(),
            next_cursor: page.next_cursor,
        }))
    }

    /// Create a user
    #[oai(path = "/admin/users", method = "post")]
    async fn create_user(
        &self,
        Data(svc): Data<&Services>,
        Meta(meta): Meta,
        auth: UserToken,
        body: Json<CreateUserBody>,
    ) -> AdminResult<UserCreated> {
        let actor = auth.admin(svc, meta).await?;
        let Json(b) = body;
        let input = users::CreateUser {
            username: b.username,
            email: b.email,
            password: b.password,
            roles: b.roles.unwrap_or_default(),
        };
        let user = users::create(svc, &actor, input).await?;
        Ok(UserCreated::Created(Json(admin_user(svc, user).await?)))
    }

    /// Read a user
    #[oai(path = "/admin/users/:id", method = "get")]
    async fn get_user(
        &self,
        Data(svc): Data<&Services>,
        Meta(meta): Meta,
        auth: UserToken,
        id: Path<String>,
    ) -> AdminResult<Json<AdminUser>> {
        auth.admin(svc, meta).await?;
        Ok(Json(admin_user(svc, users::get(svc, &id).await?).await?))
    }

    /// Change a user's email, roles or status
    #[oai(path = "/admin/users/:id", method = "patch")]
    async fn update_user(
        &self,
        Data(svc): Data<&Services>,
        Meta(meta): Meta,
        auth: UserToken,
        id: Path<String>,
        body: Json<UserPatchBody>,
    ) -> AdminResult<Json<AdminUser>> {
        let actor = auth.admin(svc, meta).await?;
        let Json(b) = body;
        let patch = users::UserPatch { email: b.email, roles: b.roles, status: b.status };
        Ok(Json(admin_user(svc, users::update(svc, &actor, &id, patch).await?).await?))
    }

    /// Delete a user
    ///
    /// Their sessions go with them; audit records keep the id.
    #[oai(path = "/admin/users/:id", method = "delete")]
    async fn delete_user(
        &self,
        Data(svc): Data<&Services>,
        Meta(meta): Meta,
        auth: UserToken,
        id: Path<String>,
    ) -> AdminResult<Deleted> {
        let actor = auth.admin(svc, meta).await?;
        users::delete(svc, &actor, &id).await?;
        Ok(Deleted::NoContent)
    }

    /// Disable a user
    ///
    /// Ends every session; the user's live access tokens introspect inactive at once and
    /// new grants are refused.
    #[oai(path = "/admin/users/:id/disable", method = "post")]
    async fn disable_user(
        &self,
        Data(svc): Data<&Services>,
        Meta(meta): Meta,
        auth: UserToken,
        id: Path<String>,
    ) -> AdminResult<Json<AdminUser>> {
        let actor = auth.admin(svc, meta).await?;
        Ok(Json(admin_user(svc, users::set_status(svc, &actor, &id, UserStatus::Disabled).await?).await?))
    }

    /// Enable a user
    #[oai(path = "/admin/users/:id/enable", method = "post")]
    async fn enable_user(
        &self,
        Data(svc): Data<&Services>,
        Meta(meta): Meta,
        auth: UserToken,
        id: Path<String>,
    ) -> AdminResult<Json<AdminUser>> {
        let actor = auth.admin(svc, meta).await?;
        Ok(Json(admin_user(svc, users::set_status(svc, &actor, &id, UserStatus::Active).await?).await?))
    }

    /// Unlock a user
    ///
    /// Clears failed attempts and any lockout; a disabled user stays disabled.
    #[oai(path = "/admin/users/:id/unlock", method = "post")]
    async fn unlock_user(
        &self,
        Data(svc): Data<&Services>,
        Meta(meta): Meta,
        auth: UserToken,
        id: Path<String>,
    ) -> AdminResult<Json<AdminUser>> {
        let actor = auth.admin(svc, meta).await?;
        Ok(Json(admin_user(svc, users::unlock(svc, &actor, &id).await?).await?))
    }

    /// Set a user's password
    ///
    /// Recovery without mail: sets the password (the registration policy applies; 400 lists
    /// every reason) and ends every session of the user.
    #[oai(path = "/admin/users/:id/password", method = "post")]
    async fn set_user_password(
        &self,
        Data(svc): Data<&Services>,
        Meta(meta): Meta,
        auth: UserToken,
        id: Path<String>,
        body: Json<SetPasswordBody>,
    ) -> AdminResult<Json<AdminUser>> {
        let actor = auth.admin(svc, meta).await?;
        Ok(Json(admin_user(svc, users::set_password(svc, &actor, &id, body.0.password).await?).await?))
    }

    /// End all of a user's sessions
    #[oai(path = "/admin/users/:id/revoke-sessions", method = "post")]
    async fn revoke_user_sessions(
        &self,
        Data(svc): Data<&Services>,
        Meta(meta): Meta,
        auth: UserToken,
        id: Path<String>,
    ) -> AdminResult<Json<RevokedSessions>> {
        let actor = auth.admin(svc, meta).await?;
        Ok(Json(RevokedSessions { revoked: users::revoke_sessions(svc, &actor, &id).await? }))
    }

    /// Reset a user's second factor
    ///
    /// Removes the TOTP authenticator and recovery codes (e.g. after a lost phone): the
    /// user logs in with the password alone until they enrol again. Idempotent: a user
    /// without a second factor also gets 204. Audited as `mfa_reset`.
    #[oai(path = "/admin/users/:id/mfa/reset", method = "post")]
    async fn reset_user_mfa(
        &self,
        Data(svc): Data<&Services>,
        Meta(meta): Meta,
        auth: UserToken,
        id: Path<String>,
    ) -> AdminResult<MfaReset> {
        let actor = auth.admin(svc, meta).await?;
        users::reset_mfa(svc, &actor, &id).await?;
        Ok(MfaReset::NoContent)
    }

    /// List clients
    #[oai(path = "/admin/clients", method = "get")]
    async fn list_clients(
        &self,
        Data(svc): Data<&Services>,
        Meta(meta): Meta,
        auth: UserToken,
    ) -> AdminResult<Json<Vec<AdminClient>>> {
        auth.admin(svc, meta).await?;
        Ok(Json(clients::list(svc).await?.iter().map(Into::into).collect()))
    }

    /// Register a client
    ///
    /// A confidential client's secret is in this answer and nowhere else, ever.
    #[oai(path = "/admin/clients", method = "post")]
    async fn create_client(
        &self,
        Data(svc): Data<&Services>,
        Meta(meta): Meta,
        auth: UserToken,
        body: Json<CreateClientBody>,
    ) -> AdminResult<ClientWithSecret> {
        let actor = auth.admin(svc, meta).await?;
        let Json(b) = body;
        let input = clients::CreateClient {
            name: b.name,
            id: b.client_id,
            public: b.public.unwrap_or(false),
            grants: b.grants,
            scopes: b.scopes.unwrap_or_default(),
            audiences: b.audiences.unwrap_or_default(),
            require_mfa: b.require_mfa.unwrap_or(false),
            redirect_uris: b.redirect_uris.unwrap_or_default(),
            post_logout_redirect_uris: b.post_logout_redirect_uris.unwrap_or_default(),
            first_party: b.first_party.unwrap_or(false),
        };
        let registered = clients::create(svc, &actor, input).await?;
        Ok(ClientWithSecret::Created(Json(registered.into()), "no-store".into()))
    }

    /// Read a client
    #[oai(path = "/admin/clients/:id", method = "get")]
    async fn get_client(
        &self,
        Data(svc): Data<&Services>,
        Meta(meta): Meta,
        auth: UserToken,
        id: Path<String>,
    ) -> AdminResult<Json<AdminClient>> {
        auth.admin(svc, meta).await?;
        Ok(Json((&clients::get(svc, &id).await?).into()))
    }

    /// Change a client's name, grants, scopes, audiences, `require_mfa`, redirect URIs or `first_party`
    #[oai(path = "/admin/clients/:id", method = "patch")]
    async fn update_client(
        &self,
        Data(svc): Data<&Services>,
        Meta(meta): Meta,
        auth: UserToken,
        id: Path<String>,
        body: Json<ClientPatchBody>,
    ) -> AdminResult<Json<AdminClient>> {
        let actor = auth.admin(svc, meta).await?;
        let Json(b) = body;
        let patch = clients::ClientPatch {
            name: b.name,
            grants: b.grants,
            scopes: b.scopes,
            audiences: b.audiences,
            require_mfa: b.require_mfa,
            redirect_uris: b.redirect_uris,
            post_logout_redirect_uris: b.post_logout_redirect_uris,
            first_party: b.first_party,
        };
        Ok(Json((&clients::update(svc, &actor, &id, patch).await?).into()))
    }

    /// Delete a client
    ///
    /// Its sessions go with it, so tokens issued to it stop working.
    #[oai(path = "/admin/clients/:id", method = "delete")]
    async fn delete_client(
        &self,
        Data(svc): Data<&Services>,
        Meta(meta): Meta,
        auth: UserToken,
        id: Path<String>,
    ) -> AdminResult<Deleted> {
        let actor = auth.admin(svc, meta).await?;
        clients::delete(svc, &actor, &id).await?;
        Ok(Deleted::NoContent)
    }

    /// Give a client a new secret
    ///
    /// The old secret stops working at once; the new one is in this answer only.
    #[oai(path = "/admin/clients/:id/rotate-secret", method = "post")]
    async fn rotate_client_secret(
        &self,
        Data(svc): Data<&Services>,
        Meta(meta): Meta,
        auth: UserToken,
        id: Path<String>,
    ) -> AdminResult<ClientWithSecret> {
        let actor = auth.admin(svc, meta).await?;
        let rotated = clients::rotate_secret(svc, &actor, &id).await?;
        Ok(ClientWithSecret::Rotated(Json(rotated.into()), "no-store".into()))
    }

    /// List signing keys and their state
    #[oai(path = "/admin/keys", method = "get")]
    async fn list_keys(
        &self,
        Data(svc): Data<&Services>,
        Meta(meta): Meta,
        auth: UserToken,
    ) -> AdminResult<Json<Vec<AdminKey>>> {
        auth.admin(svc, meta).await?;
        Ok(Json(admin::list_keys(svc).await?.into_iter().map(Into::into).collect()))
    }

    /// Rotate the signing key
    ///
    /// Adds a key of `alg` (`RS256`, `ES256` or `EdDSA`; default `--signing-alg`), published
    /// in the JWKS at once and `pending` until `signs_from`, when every cached JWKS has it
    /// (the JWKS max-age plus the 30 s in which replicas re-read keys). The old keys stay
    /// published until the tokens they signed have expired.
    #[oai(path = "/admin/keys/rotate", method = "post")]
    async fn rotate_key(
        &self,
        Data(svc): Data<&Services>,
        Meta(meta): Meta,
        auth: UserToken,
        alg: Query<Option<String>>,
    ) -> AdminResult<Json<AdminKey>> {
        let actor = auth.admin(svc, meta).await?;
        let alg =
            alg.0.as_deref().map(SigningAlg::parse).transpose().map_err(|r| AdminError::Invalid(vec![r]))?;
        Ok(Json(admin::rotate_key(svc, &actor, alg).await?.into()))
    }

    /// Search the audit log
    ///
    /// Newest first. `since` and `until` are Unix seconds (inclusive); `limit` is 1 to 200
    /// (default 50).
    #[allow(clippy::too_many_arguments)]
    #[oai(path = "/admin/audit", method = "get")]
    async fn list_audit(
        &self,
        Data(svc): Data<&Services>,
        Meta(meta): Meta,
        auth: UserToken,
        user_id: Query<Option<String>>,
        client_id: Query<Option<String>>,
        event: Query<Option<String>>,
        since: Query<Option<i64>>,
        until: Query<Option<i64>>,
        limit: Query<Option<i64>>,
        cursor: Query<Option<String>>,
    ) -> AdminResult<Json<AuditPage>> {
        auth.admin(svc, meta).await?;
        let filter = audit::AuditFilter {
            user_id: user_id.0,
            client_id: client_id.0,
            event: event.0,
            since: since.0,
            until: until.0,
            limit: limit.0,
            cursor: cursor.0,
        };
        let page = audit::list(svc, &filter).await?;
        Ok(Json(AuditPage {
            items: page.items.into_iter().map(Into::into).collect(),
            next_cursor: page.next_cursor,
        }))
    }
}
