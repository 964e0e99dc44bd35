//! Rate limits (GCRA): "N per period" allows a burst of N, then one more every period/N.
//! The state lives in the database (`store::limits`), so two replicas on one PostgreSQL
//! together still allow N, not 2N.

use std::time::Duration;

use crate::config::RateLimit;
use crate::services::Services;
use crate::store::{self, StoreError};

/// What is being limited; each has its own budget and key space.
#[derive(Debug, Clone, Copy)]
pub enum Limit {
    /// Password-grant attempts per client IP.
    Login,
    /// Refresh-token grants per user.
    Refresh,
    /// Registrations per client IP.
    Register,
    /// Second-factor attempts per user, across every `mfa_token`.
    MfaPerUser,
    /// Forgot-password requests per client IP.
    ForgotPerIp,
    /// Forgot-password requests per email address.
    ForgotPerAddress,
}

impl Limit {
    fn name(self) -> &'static str {
        match self {
            Limit::Login => "login",
            Limit::Refresh => "refresh",
            Limit::Register => "register",
            Limit::MfaPerUser => "mfa",
            Limit::ForgotPerIp => "forgot-ip",
            Limit::ForgotPerAddress => "forgot-address",
        }
    }

    fn budget(self, svc: &Services) -> RateLimit {
        let s = svc.settings();
        let per = |count: u32, minutes: u64| RateLimit::PerPeriod {
            count,
            period: Duration::from_secs(minutes * 60),
        };
        match self {
            Limit::Login => s.rate_limit_login,
            Limit::Refresh => s.rate_limit_refresh,
            Limit::Register => s.rate_limit_register,
            // The three below have no setting of their own: they follow the login switch,
            // so `--rate-limit-login off` (tests, load tests) turns them off too.
            _ if s.rate_limit_login == RateLimit::Off => RateLimit::Off,
            Limit::MfaPerUser => per(10, 15),
            Limit::ForgotPerIp => per(10, 60),
            Limit::ForgotPerAddress => per(3, 60),
        }
    }
}

/// A refused request: when to retry, and the budget it ran out of (for `RateLimit-*`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limited {
    pub retry_after_secs: u64,
    pub limit: u32,
    pub window_secs: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum LimitError {
    #[error("too many requests; retry in {} s", .0.retry_after_secs)]
    Limited(Limited),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Counts one request against `limit` for `subject` (an IP, a user id, an address).
pub async fn check(svc: &Services, limit: Limit, subject: &str) -> Result<(), LimitError> {
    let RateLimit::PerPeriod { count, period } = limit.budget(svc) else { return Ok(()) };
    let period_ms = period.as_millis() as i64;
    let emission_ms = (period_ms / i64::from(count)).max(1);
    let tolerance_ms = period_ms - emission_ms;
    let now_ms = svc.clock().now_ms();
    let key = format!("{}:{}", limit.name(), subject);
    let (allowed, tat_ms) = store::limits::hit(svc.db(), &key, now_ms, emission_ms, tolerance_ms).await?;
    if allowed {
        Ok(())
    } else {
        crate::telemetry::metrics::rate_limited(limit.name());
        let wait_ms = (tat_ms - now_ms - tolerance_ms).max(1);
        Err(LimitError::Limited(Limited {
            retry_after_secs: (wait_ms as u64).div_ceil(1000),
            limit: count,
            window_secs: period.as_secs(),
        }))
    }
}
