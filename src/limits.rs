//! Rate limits (GCRA): "N per period" allows a burst of N, then one more every period/N.
//! The state lives in the database (`store::limits`), so two replicas on one PostgreSQL
//! together still allow N, not 2N.

use std::time::Duration;

use crate::config::RateLimit;
use crate::services::Services;
use crate::store::limits::{Step, Stepped};
use crate::store::{self, StoreError};

/// What is being limited; each has its own budget and key space.
#[derive(Debug, Clone, Copy)]
pub enum Limit {
    /// Failed logins per client IP (`--rate-limit-login`): a guessing budget, so a
    /// successful login gives its unit back (`refund`).
    Login,
    /// Every login attempt per client IP, right or wrong: a generous cap on the argon2
    /// work one address can ask for.
    LoginAttempts,
    /// Refresh-token grants per user.
    Refresh,
    /// Registrations per client IP.
    Register,
    /// Second-factor attempts per user, across every `mfa_token`.
    MfaPerUser,
    /// Password checks per user at the account endpoints (change password, TOTP enrol and
    /// removal): a stolen access token must not become a password oracle.
    PasswordPerUser,
    /// Forgot-password requests per client IP.
    ForgotPerIp,
    /// Forgot-password requests per email address.
    ForgotPerAddress,
    /// Authorization requests per client IP: each one stores a request (and, for a browser
    /// without a cookie, a session) until it expires, so one address must not pile them up.
    Authorize,
}

impl Limit {
    fn name(self) -> &'static str {
        match self {
            Limit::Login => "login",
            Limit::LoginAttempts => "login-attempts",
            Limit::Refresh => "refresh",
            Limit::Register => "register",
            Limit::MfaPerUser => "mfa",
            Limit::PasswordPerUser => "password-user",
            Limit::ForgotPerIp => "forgot-ip",
            Limit::ForgotPerAddress => "forgot-address",
            Limit::Authorize => "authorize",
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
            // The ones below have no setting of their own: they follow the login switch,
            // so `--rate-limit-login off` (tests, load tests) turns them off too.
            _ if s.rate_limit_login == RateLimit::Off => RateLimit::Off,
            Limit::LoginAttempts => per(100, 10),
            Limit::MfaPerUser => per(10, 15),
            Limit::PasswordPerUser => per(10, 15),
            Limit::ForgotPerIp => per(10, 60),
            Limit::ForgotPerAddress => per(3, 60),
            Limit::Authorize => per(300, 10),
        }
    }
}

/// GCRA parameters of a budget, and the key its state is stored under.
struct Gcra {
    key: String,
    count: u32,
    period: Duration,
    emission_ms: i64,
    tolerance_ms: i64,
}

impl Gcra {
    fn new(svc: &Services, limit: Limit, subject: &str) -> Option<Gcra> {
        let RateLimit::PerPeriod { count, period } = limit.budget(svc) else { return None };
        let period_ms = period.as_millis() as i64;
        let emission_ms = (period_ms / i64::from(count)).max(1);
        // The stored state (a theoretical arrival time) only means something under the
        // budget that wrote it, so the budget is part of the key: a changed setting starts
        // from a clean slate at the next request instead of answering with the old period.
        let key = format!("{}:{}/{}:{}", limit.name(), count, period_ms, subject);
        Some(Gcra { key, count, period, emission_ms, tolerance_ms: period_ms - emission_ms })
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

/// One request counted against `limit` for `subject` now: the step for the store to take,
/// alone (`check`) or together with the request's write (a refresh's rotation).
pub struct Counted {
    limit: Limit,
    gcra: Gcra,
    now_ms: i64,
}

impl Counted {
    /// `None` when the limit is off.
    pub fn new(svc: &Services, limit: Limit, subject: &str) -> Option<Counted> {
        let gcra = Gcra::new(svc, limit, subject)?;
        Some(Counted { limit, gcra, now_ms: svc.clock().now_ms() })
    }

    pub fn step(&self) -> Step {
        let Gcra { key, emission_ms, tolerance_ms, .. } = &self.gcra;
        Step { key: key.clone(), now_ms: self.now_ms, emission_ms: *emission_ms, tolerance_ms: *tolerance_ms }
    }

    /// What the step taken says of the request.
    pub fn verdict(&self, stepped: Stepped) -> Result<(), LimitError> {
        if stepped.allowed { Ok(()) } else { Err(self.refused(stepped)) }
    }

    /// The refusal a step that was not allowed gives.
    pub fn refused(&self, stepped: Stepped) -> LimitError {
        crate::telemetry::metrics::rate_limited(self.limit.name());
        let wait_ms = (stepped.tat_ms - self.now_ms - self.gcra.tolerance_ms).max(1);
        LimitError::Limited(Limited {
            retry_after_secs: (wait_ms as u64).div_ceil(1000),
            limit: self.gcra.count,
            window_secs: self.gcra.period.as_secs(),
        })
    }
}

/// Counts one request against `limit` for `subject` (an IP key, a user id, an address).
pub async fn check(svc: &Services, limit: Limit, subject: &str) -> Result<(), LimitError> {
    let Some(counted) = Counted::new(svc, limit, subject) else { return Ok(()) };
    let stepped = store::limits::hit(svc.db(), counted.step()).await?;
    counted.verdict(stepped)
}

/// Gives back the unit a request just counted with `check` (a login that succeeded does
/// not spend the guessing budget). Counting first and refunding after, rather than
/// counting failures afterwards, keeps a parallel burst from overrunning the budget.
pub async fn refund(svc: &Services, limit: Limit, subject: &str) -> Result<(), StoreError> {
    let Some(g) = Gcra::new(svc, limit, subject) else { return Ok(()) };
    store::limits::refund(svc.db(), &g.key, g.emission_ms).await
}
