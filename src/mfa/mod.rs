//! TOTP second factor (RFC 6238) and recovery codes: enrolment, confirmation, checks,
//! removal. Knows nothing of HTTP or OAuth; the token endpoint uses `verify_totp`,
//! `use_recovery_code` and the `policy`.
//!
//! A code is accepted once per user: the last accepted time step is kept and only a later
//! step moves it, in one conditional UPDATE, so a replayed code (also in parallel) fails
//! exactly like a wrong one.

mod qr;

use rand::RngCore;
use totp_rs::{Algorithm, Totp};

use crate::account::LoginError;
use crate::crypto::password::HashError;
use crate::crypto::secrets;
use crate::model::Password;
use crate::model::RequestMeta;
use crate::services::Services;
use crate::store::{
    self, StoreError,
    audit::{AuditEvent, AuditKind},
};

/// RFC 4226 §4 recommends 160 bits.
const SECRET_BYTES: usize = 20;
const DIGITS: u8 = 6;
const STEP_SECS: u64 = 30;
/// One step either way for clock drift and typing time (RFC 6238 §5.2).
const SKEW: u16 = 1;
pub const RECOVERY_CODES: usize = 10;
/// Crockford's base32 without I, L, O, U: nothing to misread on paper.
const RECOVERY_ALPHABET: &[u8; 32] = b"0123456789abcdefghjkmnpqrstvwxyz";
/// 16 characters of 5 bits: 80 bits, beyond brute force even against a leaked SHA-256.
const RECOVERY_CHARS: usize = 16;

#[derive(Debug, thiserror::Error)]
pub enum MfaError {
    #[error("the password is not correct")]
    WrongPassword,
    #[error("the code is not valid")]
    InvalidCode,
    #[error("no authenticator is enrolled")]
    NotEnrolled,
    #[error("an authenticator is already active; disable it first")]
    AlreadyEnabled,
    #[error("too many password attempts")]
    TooManyRequests(crate::limits::Limited),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Hash(#[from] HashError),
    #[error(transparent)]
    Unsealable(#[from] crate::crypto::sealed::Unsealable),
}

/// What the user needs to set up an authenticator app; shown once.
#[derive(Debug)]
pub struct Enrolment {
    /// Base32, for typing in by hand.
    pub secret: String,
    pub otpauth_uri: String,
    pub qr_svg: String,
}

/// Whether a user has MFA, for admins and the user.
#[derive(Debug, Clone)]
pub struct MfaStatus {
    pub totp_enabled: bool,
    pub confirmed_at: Option<i64>,
    pub recovery_codes_left: i64,
}

fn builder(secret: Vec<u8>) -> totp_rs::Builder {
    totp_rs::Builder::new()
        .with_algorithm(Algorithm::SHA1)
        .with_digits(DIGITS)
        .with_step_duration(STEP_SECS)
        .with_skew(SKEW)
        .with_secret(secret)
}

fn totp(secret: Vec<u8>) -> Totp {
    // Every parameter is a constant the RFC allows and the secret is always SECRET_BYTES
    // long, so the builder's checks have nothing to refuse.
    builder(secret).build_noncompliant()
}

/// The otpauth label's issuer: the issuer's host, which tells deployments apart in the
/// app (a colon is not allowed there, so an IPv6 host falls back to the product name).
fn issuer_label(svc: &Services) -> String {
    match svc.settings().issuer.host_str() {
        Some(host) if !host.contains(':') => host.to_owned(),
        _ => "latchkey".to_owned(),
    }
}

/// The password under the same lockout and per-user limit as every other password check.
async fn check_password(
    svc: &Services,
    user_id: &str,
    password: &Password,
    meta: &RequestMeta,
) -> Result<(), MfaError> {
    crate::account::confirm_password(svc, user_id, password, meta).await.map_err(|err| match err {
        LoginError::TooManyRequests(limited) => MfaError::TooManyRequests(limited),
        LoginError::Store(e) => MfaError::Store(e),
        LoginError::Hash(e) => MfaError::Hash(e),
        LoginError::InvalidCredentials | LoginError::Inactive | LoginError::Unverified => {
            MfaError::WrongPassword
        }
    })
}

/// Starts (or restarts) enrolment: a new secret, pending until `confirm`.
pub async fn enrol(
    svc: &Services,
    user_id: &str,
    password: &Password,
    meta: &RequestMeta,
) -> Result<Enrolment, MfaError> {
    check_password(svc, user_id, password, meta).await?;
    let user = store::users::find_by_id(svc.db(), user_id).await?.ok_or(MfaError::WrongPassword)?;
    let mut secret = vec![0u8; SECRET_BYTES];
    rand::rngs::OsRng.fill_bytes(&mut secret);
    let sealed = svc.secret_box().seal(&secret, user_id);
    if !store::mfa::put_pending(svc.db(), user_id, &sealed, svc.now()).await? {
        return Err(MfaError::AlreadyEnabled);
    }
    let totp = builder(secret)
        .with_account_name(user.username.as_str())
        .with_issuer(Some(issuer_label(svc)))
        .build_noncompliant();
    // Usernames never contain a colon; one that does came from a damaged row.
    let otpauth_uri = totp
        .to_url()
        .map_err(|_| StoreError::Corrupt(format!("username {} cannot label a TOTP", user.username)))?;
    let qr_svg = qr::svg(&otpauth_uri).unwrap_or_default();
    audit(svc, AuditKind::MfaEnrolmentStarted, user_id, meta).await?;
    Ok(Enrolment { secret: totp.secret().to_base32(), otpauth_uri, qr_svg })
}

/// Activates the pending authenticator with a first valid code and returns the recovery
/// codes, in clear this once. The code's time step counts as used, so the same code
/// cannot then log in.
pub async fn confirm(
    svc: &Services,
    user_id: &str,
    code: &str,
    meta: &RequestMeta,
) -> Result<Vec<String>, MfaError> {
    let credential = store::mfa::find_credential(svc.db(), user_id).await?.ok_or(MfaError::NotEnrolled)?;
    if credential.confirmed {
        return Err(MfaError::AlreadyEnabled);
    }
    let secret = svc.secret_box().open(&credential.sealed_secret, user_id)?;
    let step = totp(secret).check(&normalise_code(code), svc.now() as u64).ok_or(MfaError::InvalidCode)?;
    let codes: Vec<String> = (0..RECOVERY_CODES).map(|_| recovery_code()).collect();
    let hashes: Vec<String> = codes.iter().map(|c| secrets::sha256_hex(&normalise_recovery(c))).collect();
    let step = i64::try_from(step).map_err(|_| MfaError::InvalidCode)?;
    if !store::mfa::confirm(svc.db(), user_id, &credential.sealed_secret, step, &hashes, svc.now()).await? {
        // Confirmed or re-enrolled by a concurrent request: this code belonged to neither.
        return Err(MfaError::InvalidCode);
    }
    audit(svc, AuditKind::MfaEnabled, user_id, meta).await?;
    Ok(codes)
}

/// Turns TOTP off: the password and a current code, both.
pub async fn disable(
    svc: &Services,
    user_id: &str,
    password: &Password,
    code: &str,
    meta: &RequestMeta,
) -> Result<(), MfaError> {
    check_password(svc, user_id, password, meta).await?;
    if !is_enrolled(svc, user_id).await? {
        return Err(MfaError::NotEnrolled);
    }
    if !verify_totp(svc, user_id, code).await? {
        return Err(MfaError::InvalidCode);
    }
    store::mfa::delete(svc.db(), user_id).await?;
    audit(svc, AuditKind::MfaDisabled, user_id, meta).await?;
    Ok(())
}

/// Removes a user's authenticator and recovery codes (an admin action: the caller audits
/// it, since it knows who acted). `false` when the user had none.
pub async fn reset(svc: &Services, user_id: &str) -> Result<bool, MfaError> {
    Ok(store::mfa::delete(svc.db(), user_id).await?)
}

pub async fn status(svc: &Services, user_id: &str) -> Result<MfaStatus, MfaError> {
    let credential = store::mfa::find_credential(svc.db(), user_id).await?.filter(|c| c.confirmed);
    Ok(MfaStatus {
        totp_enabled: credential.is_some(),
        confirmed_at: credential.and_then(|c| c.confirmed_at),
        recovery_codes_left: store::mfa::recovery_codes_left(svc.db(), user_id).await?,
    })
}

/// The user has a confirmed authenticator.
pub async fn is_enrolled(svc: &Services, user_id: &str) -> Result<bool, MfaError> {
    Ok(store::mfa::find_credential(svc.db(), user_id).await?.is_some_and(|c| c.confirmed))
}

/// Checks a TOTP code and, if it is good, marks its time step used. `false` for a wrong,
/// malformed or already used code, or a user without a confirmed authenticator.
pub async fn verify_totp(svc: &Services, user_id: &str, code: &str) -> Result<bool, MfaError> {
    let Some(credential) = store::mfa::find_credential(svc.db(), user_id).await?.filter(|c| c.confirmed)
    else {
        return Ok(false);
    };
    let secret = svc.secret_box().open(&credential.sealed_secret, user_id)?;
    let Some(step) = totp(secret).check(&normalise_code(code), svc.now() as u64) else {
        return Ok(false);
    };
    let Ok(step) = i64::try_from(step) else { return Ok(false) };
    Ok(store::mfa::accept_step(svc.db(), user_id, step).await?)
}

/// Spends a recovery code. `false` when it is unknown or already used.
pub async fn use_recovery_code(svc: &Services, user_id: &str, code: &str) -> Result<bool, MfaError> {
    let hash = secrets::sha256_hex(&normalise_recovery(code));
    Ok(store::mfa::spend_recovery_code(svc.db(), user_id, &hash, svc.now()).await?)
}

/// Apps show codes as "123 456"; accept that too.
fn normalise_code(code: &str) -> String {
    code.chars().filter(|c| !c.is_whitespace()).collect()
}

/// Case, spaces and dashes do not matter when typing a recovery code back.
fn normalise_recovery(code: &str) -> String {
    code.chars().filter(|c| c.is_ascii_alphanumeric()).map(|c| c.to_ascii_lowercase()).collect()
}

/// `xxxx-xxxx-xxxx-xxxx`, 80 random bits.
fn recovery_code() -> String {
    let mut bytes = [0u8; RECOVERY_CHARS];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    let chars: Vec<char> = bytes.iter().map(|b| RECOVERY_ALPHABET[usize::from(b & 0x1f)] as char).collect();
    chars.chunks(4).map(|c| c.iter().collect::<String>()).collect::<Vec<_>>().join("-")
}

async fn audit(
    svc: &Services,
    event: AuditKind,
    user_id: &str,
    meta: &RequestMeta,
) -> Result<(), StoreError> {
    svc.audit(
        AuditEvent {
            actor_id: Some(user_id.to_owned()),
            user_id: Some(user_id.to_owned()),
            ..AuditEvent::new(event, "success")
        },
        meta,
    )
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recovery_codes_are_long_random_and_forgiving() {
        let code = recovery_code();
        assert_eq!(code.len(), 19);
        assert_eq!(code.matches('-').count(), 3);
        assert_ne!(code, recovery_code());
        assert_eq!(normalise_recovery(&code.to_uppercase().replace('-', " ")), normalise_recovery(&code));
        // 5 bits per character; the alphabet has exactly 32 distinct symbols.
        let distinct: std::collections::BTreeSet<_> = RECOVERY_ALPHABET.iter().collect();
        assert_eq!(distinct.len(), 32);
        const { assert!(RECOVERY_CHARS * 5 >= 50) };
    }

    #[test]
    fn codes_check_within_one_step_of_skew() {
        let t = totp(vec![42u8; SECRET_BYTES]);
        let now = 1_800_000_000u64;
        let code = t.generate(now).to_string();
        assert_eq!(t.check(&code, now), Some(now / STEP_SECS));
        assert!(t.check(&t.generate(now + STEP_SECS).to_string(), now).is_some());
        assert!(t.check(&t.generate(now + 2 * STEP_SECS).to_string(), now).is_none());
        assert_eq!(normalise_code(" 123 456 "), "123456");
    }
}
