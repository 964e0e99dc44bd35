//! What `/metrics` shows: one Prometheus recorder for the process, and a named function for
//! every number the code records, so names and labels are defined here once. Labels stay
//! bounded: route templates, grant names, registered client ids, limit names, never user
//! ids, addresses or tokens.

use std::sync::OnceLock;
use std::time::Duration;

use metrics::{counter, gauge, histogram};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

use crate::store::GroupCommitTotals;

pub const HTTP_REQUESTS: &str = "latchkey_http_requests_total";
pub const HTTP_DURATION: &str = "latchkey_http_request_duration_seconds";
pub const TOKENS_ISSUED: &str = "latchkey_tokens_issued_total";
pub const LOGIN_FAILURES: &str = "latchkey_login_failures_total";
pub const LOCKOUTS: &str = "latchkey_lockouts_total";
pub const MFA_FAILURES: &str = "latchkey_mfa_failures_total";
pub const REFRESH_REUSE: &str = "latchkey_refresh_token_reuse_total";
pub const RATE_LIMITED: &str = "latchkey_rate_limited_total";
pub const DB_CONNECTIONS: &str = "latchkey_db_pool_connections";
pub const DB_ACQUIRE_WAIT: &str = "latchkey_db_pool_acquire_wait_seconds";
pub const ARGON2_PERMITS: &str = "latchkey_argon2_permits_available";
pub const PASSWORD_CHECKS_REJECTED: &str = "latchkey_password_checks_rejected_total";
pub const GROUP_COMMITS: &str = "latchkey_group_commits_total";
pub const GROUP_COMMIT_WRITES: &str = "latchkey_group_commit_writes_total";
pub const GROUP_COMMIT_BUSY: &str = "latchkey_group_commit_busy_seconds";

/// Seconds: from a cached discovery document to a slow database.
const LATENCY_BUCKETS: [f64; 13] =
    [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];

/// The process-wide recorder (the `metrics` facade has one global slot); installed by the
/// first caller, so several servers in one test process share it.
fn handle() -> &'static PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE.get_or_init(|| {
        let handle = PrometheusBuilder::new()
            .set_buckets_for_metric(Matcher::Full(HTTP_DURATION.into()), &LATENCY_BUCKETS)
            .expect("the bucket list is not empty")
            .install_recorder()
            .expect("no other metrics recorder is installed");
        describe();
        handle
    })
}

fn describe() {
    use metrics::{Unit, describe_counter, describe_gauge, describe_histogram};
    describe_counter!(HTTP_REQUESTS, "HTTP requests by method, route template and status.");
    describe_histogram!(
        HTTP_DURATION,
        Unit::Seconds,
        "Time to answer a request, by method, route and status."
    );
    describe_counter!(TOKENS_ISSUED, "Token responses by grant type and client.");
    describe_counter!(LOGIN_FAILURES, "Password logins refused for a wrong username or password, by client.");
    describe_counter!(LOCKOUTS, "Wrong passwords that locked an account.");
    describe_counter!(MFA_FAILURES, "Wrong, replayed or spent second-factor codes, by client.");
    describe_counter!(
        REFRESH_REUSE,
        "Spent refresh tokens presented again (the session is revoked), by client."
    );
    describe_counter!(RATE_LIMITED, "Requests refused by a rate limit, by limit name.");
    describe_gauge!(DB_CONNECTIONS, "Database pool connections by state (in_use, idle), at scrape time.");
    describe_gauge!(
        DB_ACQUIRE_WAIT,
        Unit::Seconds,
        "How long getting a pooled database connection took at scrape time; near 1 s the pool is exhausted."
    );
    describe_counter!(GROUP_COMMITS, "Group commits (each one transaction) since start-up.");
    describe_counter!(
        GROUP_COMMIT_WRITES,
        "Writes (audit records, refresh-token rotations, on SQLite rate-limit steps) group committed; per commit: divide by the commits."
    );
    describe_gauge!(
        GROUP_COMMIT_BUSY,
        Unit::Seconds,
        "Time spent committing groups since start-up, fsync included (only grows: rate() it); per commit, about what each write waited."
    );
    describe_gauge!(ARGON2_PERMITS, "Password hashes that could start now; 0 means logins are queueing.");
    describe_counter!(
        PASSWORD_CHECKS_REJECTED,
        "Password checks turned away (503) because the hasher's queue was full."
    );
}

/// Makes sure the recorder is in place before anything is counted (the `metrics` macros
/// drop values while no recorder is installed).
pub fn install() {
    handle();
}

/// The text exposition format.
pub fn render() -> String {
    handle().render()
}

/// Drains histogram samples into their buckets; run it now and then so an unscraped
/// server does not pile samples up.
pub fn upkeep() {
    handle().run_upkeep();
}

pub fn http_request(method: &str, route: &str, status: u16, elapsed: Duration) {
    let labels = [("method", method.to_owned()), ("route", route.to_owned()), ("status", status.to_string())];
    counter!(HTTP_REQUESTS, &labels).increment(1);
    histogram!(HTTP_DURATION, &labels).record(elapsed.as_secs_f64());
}

pub fn token_issued(grant: &str, client: &str) {
    counter!(TOKENS_ISSUED, "grant" => grant.to_owned(), "client" => client.to_owned()).increment(1);
}

pub fn login_failed(client: &str) {
    counter!(LOGIN_FAILURES, "client" => client.to_owned()).increment(1);
}

pub fn lockout() {
    counter!(LOCKOUTS).increment(1);
}

pub fn mfa_failed(client: &str) {
    counter!(MFA_FAILURES, "client" => client.to_owned()).increment(1);
}

pub fn refresh_reuse(client: &str) {
    counter!(REFRESH_REUSE, "client" => client.to_owned()).increment(1);
}

pub fn rate_limited(limit: &'static str) {
    counter!(RATE_LIMITED, "limit" => limit).increment(1);
}

/// Pool, hasher and group-commit state, sampled when `/metrics` is scraped (the hasher and
/// the group commit keep their own totals).
pub fn sample_resources(
    pool_size: u32,
    pool_idle: usize,
    pool_acquire_wait: Option<Duration>,
    argon2_permits: usize,
    password_checks_rejected: u64,
    group_commit: GroupCommitTotals,
) {
    let idle = pool_idle as f64;
    if let Some(wait) = pool_acquire_wait {
        gauge!(DB_ACQUIRE_WAIT).set(wait.as_secs_f64());
    }
    gauge!(DB_CONNECTIONS, "state" => "idle").set(idle);
    gauge!(DB_CONNECTIONS, "state" => "in_use").set((f64::from(pool_size) - idle).max(0.0));
    gauge!(ARGON2_PERMITS).set(argon2_permits as f64);
    counter!(PASSWORD_CHECKS_REJECTED).absolute(password_checks_rejected);
    counter!(GROUP_COMMITS).absolute(group_commit.commits);
    counter!(GROUP_COMMIT_WRITES).absolute(group_commit.writes);
    // A gauge only because counters here take whole numbers, and the unit is seconds.
    gauge!(GROUP_COMMIT_BUSY).set(group_commit.busy.as_secs_f64());
}
