//! Load test against a running latchkey on this machine.
//!
//! ```text
//! cargo run --release --example loadtest -- --base http://127.0.0.1:8080 \
//!     --client-id ID --client-secret S --username U --password P \
//!     --duration 10s --concurrency 16
//! ```
//!
//! The client must be confidential with the password, refresh_token and client_credentials
//! grants and scope `api`. `--flood 256` keeps 256 connections sending password grants
//! while each scenario runs (run the server with `--rate-limit-login off`), to see how the
//! other endpoints fare beside a login flood; they wait out a 503's `Retry-After` like a
//! well-behaved client unless `--flood-ignores-retry-after`. Each scenario runs for `--duration` or until `--max-requests`,
//! whichever comes first, and prints requests, errors, requests/s, p50 and p99 latency.
//! Just before and just after the password scenario it measures the argon2 bound for as
//! long, in this process while the server is idle: checks/s of latchkey's own hasher and
//! parameters, one check per core at a time (what `cargo bench --bench password`
//! measures), so that the grant's rate is read against the machine as it was around it,
//! not in another run; two bounds far apart say the machine changed speed meanwhile.
//! Only loopback addresses are accepted: this is not a tool for someone else's server.

use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};
use clap::{Parser, ValueEnum};
use latchkey::crypto::password::PasswordHasher;
use latchkey::model::Password;
use serde::Deserialize;

#[derive(Debug, Parser)]
#[command(about = "Load test a latchkey server on this machine")]
struct Args {
    /// Base URL of the server (loopback only).
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    base: url::Url,
    #[arg(long)]
    client_id: String,
    #[arg(long)]
    client_secret: String,
    #[arg(long)]
    username: String,
    #[arg(long)]
    password: String,
    /// How long each scenario runs: `500ms`, `10s`, `1m`.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    duration: Duration,
    /// Concurrent workers per scenario.
    #[arg(long, default_value_t = 16)]
    concurrency: usize,
    /// Upper bound on the requests of one scenario.
    #[arg(long, default_value_t = 1_000_000)]
    max_requests: u64,
    /// Scenarios to run, in order (default: all).
    #[arg(long, value_enum, value_delimiter = ',')]
    scenario: Vec<Scenario>,
    /// Also keep this many connections sending password grants while each scenario runs
    /// (a login flood, not measured), and print how the flood was answered.
    #[arg(long, default_value_t = 0)]
    flood: usize,
    /// Flood connections retry a 503 at once instead of waiting its `Retry-After`, as an
    /// attacker would.
    #[arg(long)]
    flood_ignores_retry_after: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Scenario {
    ClientCredentials,
    Password,
    Refresh,
    Introspect,
    Jwks,
}

const ALL: [Scenario; 5] = [
    Scenario::ClientCredentials,
    Scenario::Password,
    Scenario::Refresh,
    Scenario::Introspect,
    Scenario::Jwks,
];

fn parse_duration(text: &str) -> Result<Duration, String> {
    let (number, unit) = text.split_at(text.find(|c: char| !c.is_ascii_digit()).unwrap_or(text.len()));
    let n: u64 = number.parse().map_err(|_| format!("{text:?} is not a duration like 10s"))?;
    match unit {
        "ms" => Ok(Duration::from_millis(n)),
        "s" | "" => Ok(Duration::from_secs(n)),
        "m" => Ok(Duration::from_secs(n * 60)),
        _ => Err(format!("{text:?}: the unit must be ms, s or m")),
    }
}

#[derive(Deserialize)]
struct TokenBody {
    access_token: String,
    refresh_token: Option<String>,
}

#[derive(Deserialize)]
struct IntrospectionBody {
    active: bool,
}

struct Target {
    http: reqwest::Client,
    base: String,
    args: Args,
}

impl Target {
    fn token_request(&self, form: &[(&str, &str)]) -> reqwest::RequestBuilder {
        self.http
            .post(format!("{}/oauth/token", self.base))
            .basic_auth(&self.args.client_id, Some(&self.args.client_secret))
            .form(form)
    }

    async fn password_grant(&self) -> anyhow::Result<TokenBody> {
        let form = [
            ("grant_type", "password"),
            ("username", self.args.username.as_str()),
            ("password", self.args.password.as_str()),
            ("scope", "api"),
        ];
        let response = self.token_request(&form).send().await?;
        let status = response.status();
        ensure!(status.is_success(), "password grant answered {status}: {}", response.text().await?);
        Ok(response.json().await?)
    }
}

/// Per-worker state a scenario carries from one request to the next.
enum State {
    None,
    /// The worker's own refresh-token chain: each refresh uses the token the last one gave.
    Chain(String),
    Introspect(Arc<String>),
}

/// One request; `Ok(false)` is an answer that is not the expected success.
async fn request(target: &Target, scenario: Scenario, state: &mut State) -> anyhow::Result<bool> {
    match scenario {
        Scenario::ClientCredentials => {
            let form = [("grant_type", "client_credentials"), ("scope", "api")];
            Ok(target.token_request(&form).send().await?.status().is_success())
        }
        Scenario::Password => {
            let form = [
                ("grant_type", "password"),
                ("username", target.args.username.as_str()),
                ("password", target.args.password.as_str()),
                ("scope", "api"),
            ];
            Ok(target.token_request(&form).send().await?.status().is_success())
        }
        Scenario::Refresh => {
            let State::Chain(refresh) = state else { unreachable!("refresh workers start with a chain") };
            let form = [("grant_type", "refresh_token"), ("refresh_token", refresh.as_str())];
            let response = target.token_request(&form).send().await?;
            if !response.status().is_success() {
                return Ok(false);
            }
            let body: TokenBody = response.json().await?;
            *refresh = body.refresh_token.context("a refresh answered without a new refresh token")?;
            Ok(true)
        }
        Scenario::Introspect => {
            let State::Introspect(token) = state else { unreachable!("introspect workers share a token") };
            let response = target
                .http
                .post(format!("{}/oauth/introspect", target.base))
                .basic_auth(&target.args.client_id, Some(&target.args.client_secret))
                .form(&[("token", token.as_str())])
                .send()
                .await?;
            if !response.status().is_success() {
                return Ok(false);
            }
            Ok(response.json::<IntrospectionBody>().await?.active)
        }
        Scenario::Jwks => {
            let response = target.http.get(format!("{}/.well-known/jwks.json", target.base)).send().await?;
            let ok = response.status().is_success();
            response.bytes().await?;
            Ok(ok)
        }
    }
}

struct Outcome {
    latencies_us: Vec<u32>,
    errors: u64,
}

async fn worker(
    target: Arc<Target>,
    scenario: Scenario,
    mut state: State,
    deadline: Instant,
    budget: Arc<AtomicU64>,
) -> Outcome {
    let mut out = Outcome { latencies_us: Vec::new(), errors: 0 };
    while Instant::now() < deadline
        && budget.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1)).is_ok()
    {
        let start = Instant::now();
        let result = request(&target, scenario, &mut state).await;
        out.latencies_us.push(start.elapsed().as_micros().min(u32::MAX as u128) as u32);
        match result {
            Ok(true) => {}
            Ok(false) | Err(_) => {
                out.errors += 1;
                // A broken refresh chain cannot go on: start a new one (not timed).
                if let State::Chain(refresh) = &mut state
                    && let Ok(body) = target.password_grant().await
                {
                    *refresh = body.refresh_token.unwrap_or_default();
                }
            }
        }
    }
    out
}

async fn run(target: &Arc<Target>, scenario: Scenario) -> anyhow::Result<()> {
    let args = &target.args;
    // Set-up requests are not measured.
    let introspected = match scenario {
        Scenario::Introspect => Some(Arc::new(target.password_grant().await?.access_token)),
        _ => None,
    };
    let mut states = Vec::with_capacity(args.concurrency);
    for _ in 0..args.concurrency {
        states.push(match (scenario, &introspected) {
            (Scenario::Refresh, _) => State::Chain(
                target.password_grant().await?.refresh_token.context("the client gets no refresh tokens")?,
            ),
            (Scenario::Introspect, Some(token)) => State::Introspect(token.clone()),
            _ => State::None,
        });
    }

    // The password grant is read against the argon2 bound measured on either side of it:
    // this machine's speed moves by a fifth from one minute to the next.
    let bound_before = match scenario {
        Scenario::Password => Some(argon2_bound(args.duration).await?),
        _ => None,
    };
    // The flood starts once the set-up logins are done: it would turn them away.
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let flood = if args.flood > 0 { Some(start_flood(target, args.flood, &stop)?) } else { None };
    let budget = Arc::new(AtomicU64::new(args.max_requests));
    let started = Instant::now();
    let deadline = started + args.duration;
    let workers: Vec<_> = states
        .into_iter()
        .map(|state| tokio::spawn(worker(target.clone(), scenario, state, deadline, budget.clone())))
        .collect();
    let mut latencies = Vec::new();
    let mut errors = 0;
    for w in workers {
        let out = w.await?;
        latencies.extend(out.latencies_us);
        errors += out.errors;
    }
    let elapsed = started.elapsed().as_secs_f64();
    stop.store(true, Ordering::Relaxed);
    latencies.sort_unstable();
    let pct = |p: f64| {
        let i = ((latencies.len() as f64 * p).ceil() as usize).saturating_sub(1);
        latencies.get(i).map_or(0.0, |&us| us as f64 / 1000.0)
    };
    println!(
        "{:<18} {:>9} {:>7} {:>10.1} {:>9.2} {:>9.2}",
        format!("{scenario:?}"),
        latencies.len(),
        errors,
        latencies.len() as f64 / elapsed,
        pct(0.50),
        pct(0.99),
    );
    if let Some(before) = bound_before {
        let after = argon2_bound(args.duration).await?;
        println!(
            "  argon2 bound just before / after: {before:.1} / {after:.1} checks/s; the grant ran at {:.0} % of their mean",
            100.0 * latencies.len() as f64 / elapsed / ((before + after) / 2.0)
        );
    }
    if let Some((workers, counts)) = flood {
        for w in workers {
            w.await?;
        }
        let mut ok = counts.ok_latencies_us.lock().unwrap().clone();
        ok.sort_unstable();
        let pct = |p: f64| {
            let i = ((ok.len() as f64 * p).ceil() as usize).saturating_sub(1);
            ok.get(i).map_or(0.0, |&us| us as f64 / 1000.0)
        };
        println!(
            "  during it, a flood of {} connections got: 200 {} (p50 {:.0} ms, p99 {:.0} ms), 503 {}, other {}, no answer {}",
            args.flood,
            counts.ok.load(Ordering::Relaxed),
            pct(0.50),
            pct(0.99),
            counts.unavailable.load(Ordering::Relaxed),
            counts.other.load(Ordering::Relaxed),
            counts.failed.load(Ordering::Relaxed),
        );
    }
    Ok(())
}

/// Password checks per second of the server's hasher for `duration`, one per core at a
/// time, each core checking in a loop of its own.
async fn argon2_bound(duration: Duration) -> anyhow::Result<f64> {
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    let hasher = PasswordHasher::new(cores);
    let password = Password::candidate("correct horse battery staple".into()).map_err(anyhow::Error::msg)?;
    let hash: Arc<str> = hasher.hash(&password).await?.into();
    let started = Instant::now();
    let deadline = started + duration;
    let loops: Vec<_> = (0..cores)
        .map(|_| {
            let (hasher, password, hash) = (hasher.clone(), password.clone(), hash.clone());
            tokio::spawn(async move {
                let mut checks = 0u64;
                while Instant::now() < deadline {
                    ensure!(hasher.verify(&password, Some(&hash)).await?, "the password no longer matches");
                    checks += 1;
                }
                anyhow::Ok(checks)
            })
        })
        .collect();
    let mut checks = 0;
    for done in loops {
        checks += done.await??;
    }
    Ok(checks as f64 / started.elapsed().as_secs_f64())
}

/// How a login flood was answered.
#[derive(Default)]
struct FloodCounts {
    ok: AtomicU64,
    unavailable: AtomicU64,
    other: AtomicU64,
    failed: AtomicU64,
    /// Latencies of the 200s, in µs.
    ok_latencies_us: std::sync::Mutex<Vec<u32>>,
}

/// `connections` workers, each on its own connection, sending password grants until `stop`.
fn start_flood(
    target: &Arc<Target>,
    connections: usize,
    stop: &Arc<std::sync::atomic::AtomicBool>,
) -> anyhow::Result<(Vec<tokio::task::JoinHandle<()>>, Arc<FloodCounts>)> {
    let counts = Arc::new(FloodCounts::default());
    let mut workers = Vec::with_capacity(connections);
    for _ in 0..connections {
        let http =
            reqwest::Client::builder().pool_max_idle_per_host(1).timeout(Duration::from_secs(60)).build()?;
        let (target, stop, counts) = (target.clone(), stop.clone(), counts.clone());
        workers.push(tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                let form = [
                    ("grant_type", "password"),
                    ("username", target.args.username.as_str()),
                    ("password", target.args.password.as_str()),
                    ("scope", "api"),
                ];
                let start = Instant::now();
                let sent = http
                    .post(format!("{}/oauth/token", target.base))
                    .basic_auth(&target.args.client_id, Some(&target.args.client_secret))
                    .form(&form)
                    .send()
                    .await;
                let status = sent.as_ref().map(|r| r.status().as_u16()).ok();
                let counter = match status {
                    Some(200) => &counts.ok,
                    Some(503) => &counts.unavailable,
                    Some(_) => &counts.other,
                    None => &counts.failed,
                };
                counter.fetch_add(1, Ordering::Relaxed);
                if let Ok(response) = sent {
                    let _ = response.bytes().await;
                }
                if status == Some(200) {
                    let us = start.elapsed().as_micros().min(u32::MAX as u128) as u32;
                    counts.ok_latencies_us.lock().unwrap().push(us);
                } else if status == Some(503) && !target.args.flood_ignores_retry_after {
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }
        }));
    }
    Ok((workers, counts))
}

fn is_loopback(url: &url::Url) -> bool {
    match url.host() {
        Some(url::Host::Domain(d)) => d == "localhost",
        Some(url::Host::Ipv4(ip)) => IpAddr::V4(ip).is_loopback(),
        Some(url::Host::Ipv6(ip)) => IpAddr::V6(ip).is_loopback(),
        None => false,
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    if !is_loopback(&args.base) {
        bail!("{} is not a loopback address: this tool only loads a server on this machine", args.base);
    }
    ensure!(args.concurrency > 0, "--concurrency must be at least 1");
    let scenarios = if args.scenario.is_empty() { ALL.to_vec() } else { args.scenario.clone() };
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(args.concurrency)
        .timeout(Duration::from_secs(30))
        .build()?;
    let base = args.base.as_str().trim_end_matches('/').to_owned();
    println!(
        "{} concurrency {}, {:?} per scenario, at most {} requests each",
        base, args.concurrency, args.duration, args.max_requests
    );
    println!(
        "{:<18} {:>9} {:>7} {:>10} {:>9} {:>9}",
        "scenario", "requests", "errors", "req/s", "p50 ms", "p99 ms"
    );
    let target = Arc::new(Target { http, base, args });
    for scenario in scenarios {
        run(&target, scenario).await.with_context(|| format!("scenario {scenario:?}"))?;
    }
    Ok(())
}
