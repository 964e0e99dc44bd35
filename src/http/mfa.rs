//! TOTP self-service for the signed-in user: enrol, confirm, disable.

use poem::web::Data;
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, Object, OpenApi};

use super::ApiTags;
use super::auth::{Meta, UserToken};
use super::errors::MfaErrorResponse;
use crate::mfa::{self, MfaError};
use crate::model::Password;
use crate::services::Services;

pub struct MfaApi;

#[derive(Debug, Object)]
pub struct EnrolRequest {
    /// The current password.
    #[oai(write_only)]
    password: String,
}

/// Shown once: set up the authenticator app with it, then confirm with a code.
#[derive(Debug, Object)]
pub struct EnrolmentBody {
    /// The shared secret in base32, for typing in by hand.
    secret: String,
    /// `otpauth://totp/…` key URI.
    otpauth_uri: String,
    /// The key URI as a QR code, an SVG document.
    qr_svg: String,
}

#[derive(Debug, Object)]
pub struct ConfirmRequest {
    /// A current 6-digit code from the authenticator app.
    #[oai(write_only)]
    code: String,
}

#[derive(Debug, Object)]
pub struct RecoveryCodesBody {
    /// Ten single-use codes for when the authenticator is lost; shown this once only.
    recovery_codes: Vec<String>,
}

#[derive(Debug, Object)]
pub struct DisableRequest {
    /// The current password.
    #[oai(write_only)]
    password: String,
    /// A current 6-digit code from the authenticator app.
    #[oai(write_only)]
    code: String,
}

#[derive(ApiResponse)]
pub enum EnrolResponse {
    /// Enrolment started; not active until confirmed.
    #[oai(status = 200)]
    Ok(Json<EnrolmentBody>, #[oai(header = "Cache-Control")] String),
}

#[derive(ApiResponse)]
pub enum ConfirmResponse {
    /// TOTP is now active.
    #[oai(status = 200)]
    Ok(Json<RecoveryCodesBody>, #[oai(header = "Cache-Control")] String),
}

#[derive(ApiResponse)]
pub enum DisableResponse {
    /// TOTP is off; the recovery codes are gone too.
    #[oai(status = 204)]
    NoContent,
}

/// An unusable password (empty, absurdly long) is simply not the password.
fn password(text: String) -> Result<Password, MfaError> {
    Password::candidate(text).map_err(|_| MfaError::WrongPassword)
}

#[OpenApi(tag = "ApiTags::Mfa")]
impl MfaApi {
    /// Start TOTP enrolment
    ///
    /// Needs the password. Returns a new secret, its `otpauth://` URI and a QR code; TOTP
    /// is not active until confirmed. Starting again replaces a pending enrolment; an
    /// active authenticator must be disabled first (409).
    #[oai(path = "/account/mfa/totp", method = "post")]
    async fn enrol(
        &self,
        Data(svc): Data<&Services>,
        Meta(meta): Meta,
        auth: UserToken,
        body: Json<EnrolRequest>,
    ) -> Result<EnrolResponse, MfaErrorResponse> {
        let caller = auth.account(svc).await?;
        let e = mfa::enrol(svc, &caller.user_id, &password(body.0.password)?, &meta).await?;
        let body = EnrolmentBody { secret: e.secret, otpauth_uri: e.otpauth_uri, qr_svg: e.qr_svg };
        Ok(EnrolResponse::Ok(Json(body), "no-store".into()))
    }

    /// Confirm TOTP enrolment
    ///
    /// A valid code activates TOTP and returns ten single-use recovery codes, shown this
    /// once. The code cannot be used again to log in.
    #[oai(path = "/account/mfa/totp/confirm", method = "post")]
    async fn confirm(
        &self,
        Data(svc): Data<&Services>,
        Meta(meta): Meta,
        auth: UserToken,
        body: Json<ConfirmRequest>,
    ) -> Result<ConfirmResponse, MfaErrorResponse> {
        let caller = auth.account(svc).await?;
        let recovery_codes = mfa::confirm(svc, &caller.user_id, &body.0.code, &meta).await?;
        Ok(ConfirmResponse::Ok(Json(RecoveryCodesBody { recovery_codes }), "no-store".into()))
    }

    /// Disable TOTP
    ///
    /// Needs the password and a current code.
    #[oai(path = "/account/mfa/totp", method = "delete")]
    async fn disable(
        &self,
        Data(svc): Data<&Services>,
        Meta(meta): Meta,
        auth: UserToken,
        body: Json<DisableRequest>,
    ) -> Result<DisableResponse, MfaErrorResponse> {
        let caller = auth.account(svc).await?;
        let DisableRequest { password: text, code } = body.0;
        mfa::disable(svc, &caller.user_id, &password(text)?, &code, &meta).await?;
        Ok(DisableResponse::NoContent)
    }
}
