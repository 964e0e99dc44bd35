//! OAuth endpoints: parse the form, call `crate::oauth`, map the result.

use poem::web::Data;
use poem_openapi::payload::{Form, Json};
use poem_openapi::{ApiResponse, Object, OpenApi};
use serde::Deserialize;

use super::ApiTags;
use super::auth::{ClientAuth, Meta, UserToken, presented_client};
use super::errors::{BearerErrorResponse, OAuthErrorResponse};
use crate::model::Password;
use crate::model::{GrantType, Scope};
use crate::oauth::grants::{self, GrantRequest, SecondFactor};
use crate::oauth::introspect::{self, ActiveToken};
use crate::oauth::{OAuthError, revoke, userinfo};
use crate::services::Services;

pub struct OAuthApi;

/// Token request (RFC 6749 §4.3, §4.4, §6), `application/x-www-form-urlencoded`.
#[derive(Debug, Object, Deserialize)]
pub struct TokenForm {
    /// `authorization_code`, `password`, `refresh_token`, `client_credentials` or
    /// `urn:latchkey:params:oauth:grant-type:mfa-otp`.
    grant_type: String,
    /// Authorization code grant: the code from the redirect.
    #[oai(write_only)]
    code: Option<String>,
    /// Authorization code grant: the redirect URI of the authorization request.
    redirect_uri: Option<String>,
    /// Authorization code grant: the PKCE verifier (RFC 7636).
    #[oai(write_only)]
    code_verifier: Option<String>,
    /// Password grant: the username.
    username: Option<String>,
    /// Password grant: the password.
    #[oai(write_only)]
    password: Option<String>,
    /// Space-separated scopes; defaults to everything the client may have.
    scope: Option<String>,
    /// Refresh grant: the refresh token.
    #[oai(write_only)]
    refresh_token: Option<String>,
    /// `client_secret_post` or a public client: the client id.
    client_id: Option<String>,
    /// `client_secret_post`: the client secret.
    #[oai(write_only)]
    client_secret: Option<String>,
    /// A TOTP code (password or MFA grant).
    #[oai(write_only)]
    otp: Option<String>,
    /// MFA grant: the `mfa_token` from the `mfa_required` error.
    #[oai(write_only)]
    mfa_token: Option<String>,
    /// MFA grant: a recovery code instead of `otp`.
    #[oai(write_only)]
    recovery_code: Option<String>,
}

/// RFC 6749 §5.1 token response.
#[derive(Debug, Object)]
pub struct TokenBody {
    access_token: String,
    /// Always `Bearer`.
    token_type: String,
    /// Seconds until the access token expires.
    expires_in: u64,
    scope: String,
    #[oai(skip_serializing_if_is_none)]
    refresh_token: Option<String>,
    /// With scope `openid`: an OpenID Connect ID token.
    #[oai(skip_serializing_if_is_none)]
    id_token: Option<String>,
}

#[derive(ApiResponse)]
pub enum TokenResponse {
    /// Tokens issued.
    #[oai(status = 200)]
    Ok(Json<TokenBody>, #[oai(header = "Cache-Control")] String, #[oai(header = "Pragma")] String),
}

/// Introspection (RFC 7662) or revocation (RFC 7009) request.
#[derive(Debug, Object, Deserialize)]
pub struct TokenParamsForm {
    /// The token to look at.
    #[oai(write_only)]
    token: String,
    /// `access_token` or `refresh_token`; optional, and only a hint.
    token_type_hint: Option<String>,
    client_id: Option<String>,
    #[oai(write_only)]
    client_secret: Option<String>,
}

/// RFC 7662 §2.2: `active` and, when active, the token's details.
#[derive(Debug, Object)]
pub struct IntrospectionBody {
    active: bool,
    #[oai(skip_serializing_if_is_none)]
    scope: Option<String>,
    #[oai(skip_serializing_if_is_none)]
    client_id: Option<String>,
    #[oai(skip_serializing_if_is_none)]
    token_type: Option<String>,
    #[oai(skip_serializing_if_is_none)]
    exp: Option<i64>,
    #[oai(skip_serializing_if_is_none)]
    iat: Option<i64>,
    #[oai(skip_serializing_if_is_none)]
    sub: Option<String>,
    #[oai(skip_serializing_if_is_none)]
    aud: Option<Vec<String>>,
    #[oai(skip_serializing_if_is_none)]
    iss: Option<String>,
    #[oai(skip_serializing_if_is_none)]
    jti: Option<String>,
    #[oai(skip_serializing_if_is_none)]
    auth_time: Option<i64>,
    /// RFC 8176 authentication methods: `pwd`, `otp`, `mfa`.
    #[oai(skip_serializing_if_is_none)]
    amr: Option<Vec<String>>,
    #[oai(skip_serializing_if_is_none)]
    roles: Option<Vec<String>>,
}

impl From<Option<ActiveToken>> for IntrospectionBody {
    fn from(token: Option<ActiveToken>) -> Self {
        match token {
            None => IntrospectionBody {
                active: false,
                scope: None,
                client_id: None,
                token_type: None,
                exp: None,
                iat: None,
                sub: None,
                aud: None,
                iss: None,
                jti: None,
                auth_time: None,
                amr: None,
                roles: None,
            },
            Some(t) => IntrospectionBody {
                active: t.active,
                scope: Some(t.scope),
                client_id: Some(t.client_id),
                token_type: Some(t.token_type.to_owned()),
                exp: Some(t.exp),
                iat: Some(t.iat),
                sub: Some(t.sub),
                aud: t.aud,
                iss: t.iss,
                jti: t.jti,
                auth_time: t.auth_time,
                amr: t.amr,
                roles: t.roles,
            },
        }
    }
}

#[derive(ApiResponse)]
pub enum RevokeResponse {
    /// Revoked, or there was nothing to revoke (RFC 7009 §2.2).
    #[oai(status = 200)]
    Ok,
}

/// OIDC UserInfo response.
#[derive(Debug, Object)]
pub struct UserInfoBody {
    sub: String,
    #[oai(skip_serializing_if_is_none)]
    preferred_username: Option<String>,
    #[oai(skip_serializing_if_is_none)]
    email: Option<String>,
    #[oai(skip_serializing_if_is_none)]
    email_verified: Option<bool>,
}

fn required(value: Option<String>, name: &str) -> Result<String, OAuthError> {
    value
        .filter(|v| !v.is_empty())
        .ok_or_else(|| OAuthError::invalid_request(format!("missing parameter {name}")))
}

fn parse_scope(scope: Option<String>) -> Result<Option<Scope>, OAuthError> {
    match scope.filter(|s| !s.is_empty()) {
        None => Ok(None),
        Some(text) => Scope::parse(&text)
            .map(Some)
            .ok_or_else(|| OAuthError::InvalidScope("the scope is malformed".into())),
    }
}

/// Turns the form into a typed grant request: `unsupported_grant_type` for unknown grants,
/// `invalid_request` for missing parameters.
fn grant_request(form: TokenForm) -> Result<GrantRequest, OAuthError> {
    let grant = GrantType::parse(&form.grant_type).ok_or(OAuthError::UnsupportedGrantType)?;
    let scope = parse_scope(form.scope)?;
    Ok(match grant {
        GrantType::AuthorizationCode => GrantRequest::AuthorizationCode {
            code: required(form.code, "code")?,
            redirect_uri: required(form.redirect_uri, "redirect_uri")?,
            code_verifier: required(form.code_verifier, "code_verifier")?,
        },
        GrantType::Password => GrantRequest::Password {
            username: required(form.username, "username")?,
            password: Password::candidate(required(form.password, "password")?)
                .map_err(OAuthError::InvalidRequest)?,
            scope,
            otp: form.otp,
        },
        GrantType::RefreshToken => GrantRequest::RefreshToken {
            refresh_token: required(form.refresh_token, "refresh_token")?,
            scope,
        },
        GrantType::ClientCredentials => GrantRequest::ClientCredentials { scope },
        GrantType::MfaOtp => GrantRequest::MfaOtp {
            mfa_token: required(form.mfa_token, "mfa_token")?,
            factor: match (form.otp.filter(|v| !v.is_empty()), form.recovery_code.filter(|v| !v.is_empty())) {
                (Some(otp), None) => SecondFactor::Otp(otp),
                (None, Some(code)) => SecondFactor::RecoveryCode(code),
                (None, None) => {
                    return Err(OAuthError::invalid_request("missing parameter otp or recovery_code"));
                }
                (Some(_), Some(_)) => {
                    return Err(OAuthError::invalid_request("send otp or recovery_code, not both"));
                }
            },
        },
    })
}

#[OpenApi(tag = "ApiTags::OAuth")]
impl OAuthApi {
    /// Token endpoint
    ///
    /// Authorization code with PKCE (RFC 6749 §4.1, RFC 7636), password (§4.3), refresh
    /// token (§6) and client credentials (§4.4) grants, and the MFA grant
    /// `urn:latchkey:params:oauth:grant-type:mfa-otp`. A code works once, within 60 s, with
    /// the `redirect_uri` and `code_verifier` of its request; a second use is
    /// `invalid_grant` and ends the session the first use started.
    /// Clients authenticate with HTTP Basic or `client_id`/`client_secret` in the form;
    /// public clients send only `client_id`.
    ///
    /// A user with a TOTP authenticator gets 403 `mfa_required` with an `mfa_token` from
    /// the password grant (unless it carried `otp`); the MFA grant then takes `mfa_token`
    /// with `otp` or `recovery_code`. The `mfa_token` lives 5 minutes and takes at most 5
    /// codes. A wrong, replayed or used code, or a dead `mfa_token`, is 400 `invalid_grant`.
    /// A client that requires MFA refuses users without TOTP: 403 `mfa_enrollment_required`.
    #[oai(path = "/oauth/token", method = "post")]
    async fn token(
        &self,
        Data(svc): Data<&Services>,
        Meta(meta): Meta,
        auth: ClientAuth,
        form: Form<TokenForm>,
    ) -> Result<TokenResponse, OAuthErrorResponse> {
        let Form(mut form) = form;
        let presented = presented_client(&auth, form.client_id.take(), form.client_secret.take())
            .map_err(OAuthError::invalid_request)?;
        let request = grant_request(form)?;
        let t = grants::exchange(svc, &presented, request, &meta).await?;
        Ok(TokenResponse::Ok(
            Json(TokenBody {
                access_token: t.access_token,
                token_type: t.token_type.into(),
                expires_in: t.expires_in,
                scope: t.scope,
                refresh_token: t.refresh_token,
                id_token: t.id_token,
            }),
            "no-store".into(),
            "no-cache".into(),
        ))
    }

    /// Token introspection (RFC 7662)
    ///
    /// Authenticated clients only. Anything that is not an active token the caller may
    /// see answers exactly `{"active": false}`.
    #[oai(path = "/oauth/introspect", method = "post")]
    async fn introspect(
        &self,
        Data(svc): Data<&Services>,
        auth: ClientAuth,
        form: Form<TokenParamsForm>,
    ) -> Result<Json<IntrospectionBody>, OAuthErrorResponse> {
        let Form(form) = form;
        let presented = presented_client(&auth, form.client_id, form.client_secret)
            .map_err(OAuthError::invalid_request)?;
        let active = introspect::introspect(svc, &presented, &form.token).await?;
        Ok(Json(active.into()))
    }

    /// Token revocation (RFC 7009)
    ///
    /// Revoking a refresh token ends its whole session, including the access tokens
    /// issued in it. Unknown tokens answer 200.
    #[oai(path = "/oauth/revoke", method = "post")]
    async fn revoke(
        &self,
        Data(svc): Data<&Services>,
        Meta(meta): Meta,
        auth: ClientAuth,
        form: Form<TokenParamsForm>,
    ) -> Result<RevokeResponse, OAuthErrorResponse> {
        let Form(form) = form;
        let presented = presented_client(&auth, form.client_id, form.client_secret)
            .map_err(OAuthError::invalid_request)?;
        revoke::revoke(svc, &presented, &form.token, &meta).await?;
        Ok(RevokeResponse::Ok)
    }

    /// UserInfo (OpenID Connect Core §5.3)
    #[oai(path = "/oauth/userinfo", method = "get")]
    async fn userinfo_get(
        &self,
        Data(svc): Data<&Services>,
        auth: UserToken,
    ) -> Result<Json<UserInfoBody>, BearerErrorResponse> {
        userinfo_response(svc, auth).await
    }

    /// UserInfo (OpenID Connect Core §5.3), POST form
    #[oai(path = "/oauth/userinfo", method = "post")]
    async fn userinfo_post(
        &self,
        Data(svc): Data<&Services>,
        auth: UserToken,
    ) -> Result<Json<UserInfoBody>, BearerErrorResponse> {
        userinfo_response(svc, auth).await
    }
}

async fn userinfo_response(
    svc: &Services,
    auth: UserToken,
) -> Result<Json<UserInfoBody>, BearerErrorResponse> {
    let info = userinfo::userinfo(svc, auth.token()).await?;
    Ok(Json(UserInfoBody {
        sub: info.sub,
        preferred_username: info.preferred_username,
        email: info.email,
        email_verified: info.email_verified,
    }))
}
