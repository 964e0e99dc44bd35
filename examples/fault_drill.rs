//! Fault drill: a release `latchkey` on this machine under mixed load (refresh chains,
//! logins, registrations, client credentials), broken on purpose, then audited from the
//! database: what was acknowledged, what was lost, which sessions were wrongly ended, and
//! how long until requests succeeded again. `benches/fault_drill.sh` builds and runs it.
//!
//! Faults: `kill -9` at random moments; a full disk (SQLite on a small tmpfs given with
//! `--tmpfs`, filled with a ballast file that is then deleted); a database outage
//! (PostgreSQL through a proxy in this process that is stopped and started); overload
//! (`--overload` patient clients sending password grants at once, each on its own
//! connection, beside the ordinary load).
//! Traffic goes to 127.0.0.1 only, and every phase is bounded in time.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::Parser;
use sha2::Digest;

#[derive(Debug, Parser)]
struct Args {
    /// The latchkey binary (a release build).
    #[arg(long)]
    bin: PathBuf,
    /// Admin URL of a PostgreSQL server (a database is created for the drill); SQLite
    /// when absent.
    #[arg(long)]
    postgres: Option<String>,
    /// SQLite only: a small tmpfs to put the database on for the full-disk phase.
    #[arg(long)]
    tmpfs: Option<PathBuf>,
    /// How many times the server is killed with SIGKILL.
    #[arg(long, default_value_t = 3)]
    kills: u32,
    /// Seconds of load before each fault.
    #[arg(long, default_value_t = 4)]
    load_secs: u64,
    /// `--refresh-reuse-grace` of the server.
    #[arg(long, default_value = "60s")]
    grace: String,
    /// Refresh chains kept going at once.
    #[arg(long, default_value_t = 8)]
    chains: usize,
    /// Password grants sent at once, again and again, in the overload phase (0 skips it).
    #[arg(long, default_value_t = 2000)]
    overload: usize,
}

/// What the load saw in one phase.
#[derive(Default)]
struct Phase {
    name: String,
    acknowledged: AtomicU64,
    /// Sessions the client still held a good token for, answered `invalid_grant`.
    wrongly_revoked: AtomicU64,
    /// 5xx other than 503, and 503 without Retry-After.
    bad_errors: AtomicU64,
    /// 503 with Retry-After.
    unavailable: AtomicU64,
    /// No answer at all: refused connection, reset, timeout.
    no_answer: AtomicU64,
    recover: Mutex<Option<Duration>>,
}

#[derive(Default)]
struct Ledger {
    /// Every refresh token handed out (logins and rotations), with its phase.
    refresh: Mutex<Vec<(String, usize)>>,
    registered: Mutex<Vec<(String, usize)>>,
    client_credentials: AtomicU64,
    phases: Mutex<Vec<Arc<Phase>>>,
    stop: AtomicBool,
    serial: AtomicU64,
}

impl Ledger {
    fn phase(&self) -> (usize, Arc<Phase>) {
        let phases = self.phases.lock().unwrap();
        (phases.len() - 1, phases.last().unwrap().clone())
    }

    fn begin(&self, name: &str) -> Arc<Phase> {
        let phase = Arc::new(Phase { name: name.to_owned(), ..Default::default() });
        self.phases.lock().unwrap().push(phase.clone());
        phase
    }
}

struct Drill {
    http: reqwest::Client,
    base: String,
    secret: String,
    ledger: Ledger,
}

fn sha256_hex(text: &str) -> String {
    sha2::Sha256::digest(text.as_bytes()).iter().map(|b| format!("{b:02x}")).collect()
}

enum Outcome {
    Ok(serde_json::Value),
    /// `invalid_grant` and friends: the server said no for good.
    Refused,
    /// 503 with Retry-After: an honest "not now".
    Busy,
    /// Any other 5xx, a connection error, a timeout: try again.
    Retry,
}

impl Drill {
    async fn token(&self, form: &[(&str, &str)]) -> Outcome {
        self.token_with(&self.http, form).await
    }

    async fn token_with(&self, http: &reqwest::Client, form: &[(&str, &str)]) -> Outcome {
        let sent = http
            .post(format!("{}/oauth/token", self.base))
            .basic_auth("drill", Some(&self.secret))
            .form(form)
            .send()
            .await;
        self.outcome(sent).await
    }

    async fn outcome(&self, sent: reqwest::Result<reqwest::Response>) -> Outcome {
        let Ok(resp) = sent else {
            self.ledger.phase().1.no_answer.fetch_add(1, Ordering::Relaxed);
            return Outcome::Retry;
        };
        let status = resp.status().as_u16();
        let retry_after = resp.headers().contains_key("retry-after");
        match status {
            200 | 201 => resp.json().await.map(Outcome::Ok).unwrap_or(Outcome::Retry),
            503 if retry_after => {
                self.ledger.phase().1.unavailable.fetch_add(1, Ordering::Relaxed);
                Outcome::Busy
            }
            s if s >= 500 => {
                self.ledger.phase().1.bad_errors.fetch_add(1, Ordering::Relaxed);
                Outcome::Retry
            }
            _ => Outcome::Refused,
        }
    }

    async fn login(&self) -> Option<String> {
        match self.login_with(&self.http).await {
            Outcome::Ok(body) => body["refresh_token"].as_str().map(str::to_owned),
            _ => None,
        }
    }

    /// A password grant; an acknowledged refresh token goes into the ledger.
    async fn login_with(&self, http: &reqwest::Client) -> Outcome {
        let form =
            [("grant_type", "password"), ("username", "drill"), ("password", PASSWORD), ("scope", "api")];
        let outcome = self.token_with(http, &form).await;
        if let Outcome::Ok(body) = &outcome
            && let Some(refresh) = body["refresh_token"].as_str()
        {
            let (index, phase) = self.ledger.phase();
            phase.acknowledged.fetch_add(1, Ordering::Relaxed);
            self.ledger.refresh.lock().unwrap().push((refresh.to_owned(), index));
        }
        outcome
    }

    /// One refresh chain: rotate, rotate, … retrying the same token after any failure,
    /// as a client does that never saw an answer.
    async fn chain(&self) {
        let mut token = None;
        while !self.ledger.stop.load(Ordering::Relaxed) {
            let Some(current) = token.clone() else {
                token = self.login().await;
                if token.is_none() {
                    pause().await;
                }
                continue;
            };
            match self.token(&[("grant_type", "refresh_token"), ("refresh_token", &current)]).await {
                Outcome::Ok(body) => {
                    let next = body["refresh_token"].as_str().unwrap_or_default().to_owned();
                    let (index, phase) = self.ledger.phase();
                    phase.acknowledged.fetch_add(1, Ordering::Relaxed);
                    self.ledger.refresh.lock().unwrap().push((next.clone(), index));
                    token = Some(next);
                }
                Outcome::Refused => {
                    self.ledger.phase().1.wrongly_revoked.fetch_add(1, Ordering::Relaxed);
                    token = None;
                }
                Outcome::Busy | Outcome::Retry => pause().await,
            }
        }
    }

    async fn registrations(&self) {
        while !self.ledger.stop.load(Ordering::Relaxed) {
            let name = format!("drill{}", self.ledger.serial.fetch_add(1, Ordering::Relaxed));
            let body = serde_json::json!({"username": name, "email": format!("{name}@example.com"), "password": PASSWORD});
            let sent = self.http.post(format!("{}/account/register", self.base)).json(&body).send().await;
            match self.outcome(sent).await {
                Outcome::Ok(_) => {
                    let (index, phase) = self.ledger.phase();
                    phase.acknowledged.fetch_add(1, Ordering::Relaxed);
                    self.ledger.registered.lock().unwrap().push((name, index));
                }
                _ => pause().await,
            }
        }
    }

    async fn client_credentials(&self) {
        while !self.ledger.stop.load(Ordering::Relaxed) {
            match self.token(&[("grant_type", "client_credentials"), ("scope", "api")]).await {
                Outcome::Ok(_) => {
                    self.ledger.phase().1.acknowledged.fetch_add(1, Ordering::Relaxed);
                    self.ledger.client_credentials.fetch_add(1, Ordering::Relaxed);
                }
                _ => pause().await,
            }
        }
    }

    /// One patient client of the flood: a fresh connection per login, 35 s to answer (past
    /// the server's 30 s cut-off), the time each refusal took recorded.
    async fn flood(&self, stop: &AtomicBool, refusals: &Mutex<Vec<Duration>>) {
        while !stop.load(Ordering::Relaxed) {
            let Ok(http) =
                reqwest::Client::builder().timeout(Duration::from_secs(35)).pool_max_idle_per_host(0).build()
            else {
                return;
            };
            let asked = Instant::now();
            match self.login_with(&http).await {
                Outcome::Ok(_) => {}
                Outcome::Busy => {
                    refusals.lock().unwrap().push(asked.elapsed());
                    // Retry-After says 1 s; a polite client waits about that long.
                    tokio::time::sleep(Duration::from_millis(500 + rand::random::<u64>() % 1000)).await;
                }
                Outcome::Refused | Outcome::Retry => pause().await,
            }
        }
    }

    /// Polls until `ok` or `limit`; how long it took.
    async fn until(&self, limit: Duration, path: &str, ok: u16) -> Option<Duration> {
        let started = Instant::now();
        while started.elapsed() < limit {
            let sent = self.http.get(format!("{}{path}", self.base)).send().await;
            if sent.is_ok_and(|r| r.status().as_u16() == ok) {
                return Some(started.elapsed());
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        None
    }
}

const PASSWORD: &str = "correct horse battery staple";

async fn pause() {
    tokio::time::sleep(Duration::from_millis(50)).await;
}

struct Server {
    bin: PathBuf,
    env: Vec<(String, String)>,
    child: Option<Child>,
}

impl Server {
    fn command(&self) -> Command {
        let mut cmd = Command::new(&self.bin);
        cmd.env_clear().envs(self.env.iter().map(|(k, v)| (k, v))).stdin(Stdio::null());
        cmd
    }

    fn start(&mut self) -> anyhow::Result<()> {
        let child = self.command().arg("serve").stdout(Stdio::null()).stderr(Stdio::null()).spawn()?;
        self.child = Some(child);
        Ok(())
    }

    fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// A `/proc/<pid>/status` line of the running server, in KiB.
    fn memory(&self, field: &str) -> Option<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.as_ref()?.id())).ok()?;
        let line = status.lines().find(|l| l.starts_with(field))?;
        line.split_whitespace().nth(1)?.parse().ok()
    }

    fn terminate(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = Command::new("kill").args(["-TERM", &child.id().to_string()]).status();
            let _ = child.wait();
        }
    }

    fn cli(&self, args: &[&str], stdin: Option<&str>) -> anyhow::Result<serde_json::Value> {
        use std::io::Write;
        let mut child = self
            .command()
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()?;
        child.stdin.take().unwrap().write_all(stdin.unwrap_or_default().as_bytes())?;
        let out = child.wait_with_output()?;
        if !out.status.success() {
            bail!("latchkey {args:?} failed");
        }
        Ok(serde_json::from_slice(&out.stdout)?)
    }
}

/// A TCP proxy that can be cut (every connection closed, new ones refused) and restored.
struct Proxy {
    port: u16,
    target: String,
    task: Mutex<Option<tokio::task::JoinHandle<()>>>,
}

impl Proxy {
    async fn start(target: String) -> anyhow::Result<Arc<Proxy>> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let proxy = Arc::new(Proxy { port: listener.local_addr()?.port(), target, task: Mutex::new(None) });
        proxy.serve(listener);
        Ok(proxy)
    }

    fn serve(&self, listener: tokio::net::TcpListener) {
        let target = self.target.clone();
        let task = tokio::spawn(async move {
            let mut pipes = tokio::task::JoinSet::new();
            while let Ok((mut inbound, _)) = listener.accept().await {
                let target = target.clone();
                pipes.spawn(async move {
                    if let Ok(mut outbound) = tokio::net::TcpStream::connect(target).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
            }
        });
        *self.task.lock().unwrap() = Some(task);
    }

    fn stop(&self) {
        if let Some(task) = self.task.lock().unwrap().take() {
            task.abort();
        }
    }

    async fn resume(&self) -> anyhow::Result<()> {
        self.serve(tokio::net::TcpListener::bind(("127.0.0.1", self.port)).await?);
        Ok(())
    }
}

fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// Fills the file system under `dir` with a ballast file, leaving about `leave` bytes.
fn fill(dir: &Path, leave: u64) -> anyhow::Result<PathBuf> {
    use std::io::Write;
    let ballast = dir.join("ballast");
    let mut file = std::fs::File::create(&ballast)?;
    let chunk = vec![0u8; 64 * 1024];
    loop {
        let free = fs_free(dir)?;
        if free <= leave {
            break;
        }
        let n = (free - leave).min(chunk.len() as u64) as usize;
        if file.write_all(&chunk[..n]).is_err() {
            break;
        }
        let _ = file.flush();
    }
    Ok(ballast)
}

fn fs_free(dir: &Path) -> anyhow::Result<u64> {
    let out = Command::new("df").args(["-B1", "--output=avail"]).arg(dir).output()?;
    let text = String::from_utf8_lossy(&out.stdout);
    text.lines().nth(1).and_then(|l| l.trim().parse().ok()).context("df did not say how much is free")
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let work = tempfile::tempdir()?;
    let port = free_port()?;
    let base = format!("http://127.0.0.1:{port}");

    let mut proxy = None;
    let (database_url, direct_url) = match &args.postgres {
        Some(admin) => {
            let url = url::Url::parse(admin)?;
            let name = format!("latchkey_drill_{}", uuid::Uuid::new_v4().simple());
            let mut conn = <sqlx::PgConnection as sqlx::Connection>::connect(admin).await?;
            sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}"))).execute(&mut conn).await?;
            let target = format!("{}:{}", url.host_str().unwrap_or("127.0.0.1"), url.port().unwrap_or(5432));
            let p = Proxy::start(target).await?;
            let mut direct = url.clone();
            direct.set_path(&format!("/{name}"));
            let mut routed = direct.clone();
            routed.set_host(Some("127.0.0.1"))?;
            routed.set_port(Some(p.port)).ok();
            proxy = Some(p);
            (routed.to_string(), direct.to_string())
        }
        None => {
            let dir = args.tmpfs.clone().unwrap_or_else(|| work.path().to_owned());
            let url = format!("sqlite://{}?mode=rwc", dir.join("drill.db").display());
            (url.clone(), url)
        }
    };
    let mut server = Server {
        bin: args.bin.clone(),
        env: vec![
            ("LATCHKEY_DATABASE_URL".into(), database_url),
            ("LATCHKEY_KEYS_DIR".into(), work.path().join("keys").display().to_string()),
            ("LATCHKEY_BIND".into(), format!("127.0.0.1:{port}")),
            ("LATCHKEY_MAIL".into(), format!("dir:{}", work.path().join("mail").display())),
            ("LATCHKEY_RATE_LIMIT_LOGIN".into(), "off".into()),
            ("LATCHKEY_RATE_LIMIT_REFRESH".into(), "off".into()),
            ("LATCHKEY_RATE_LIMIT_REGISTER".into(), "off".into()),
            ("LATCHKEY_REFRESH_REUSE_GRACE".into(), args.grace.clone()),
        ],
        child: None,
    };
    server.cli(&["migrate"], None).ok();
    server.cli(
        &["user", "create", "--username", "drill", "--email", "drill@example.com", "--password-stdin"],
        Some(PASSWORD),
    )?;
    let client = server.cli(
        &[
            "client",
            "create",
            "--name",
            "drill",
            "--id",
            "drill",
            "--grant",
            "password",
            "--grant",
            "refresh_token",
            "--grant",
            "client_credentials",
            "--scope",
            "api",
        ],
        None,
    )?;
    let secret = client["client_secret"].as_str().context("no client secret")?.to_owned();

    let drill = Arc::new(Drill {
        http: reqwest::Client::builder().timeout(Duration::from_secs(5)).build()?,
        base,
        secret,
        ledger: Ledger::default(),
    });
    drill.ledger.begin("warm-up");
    server.start()?;
    drill.until(Duration::from_secs(30), "/readyz", 200).await.context("the server did not become ready")?;

    let mut workers = Vec::new();
    for _ in 0..args.chains {
        let d = drill.clone();
        workers.push(tokio::spawn(async move { d.chain().await }));
    }
    let d = drill.clone();
    workers.push(tokio::spawn(async move { d.registrations().await }));
    let d = drill.clone();
    workers.push(tokio::spawn(async move { d.client_credentials().await }));
    let load = Duration::from_secs(args.load_secs);
    tokio::time::sleep(load).await;

    for i in 0..args.kills {
        let phase = drill.ledger.begin(&format!("kill -9 #{}", i + 1));
        // A random moment within the next second of load.
        tokio::time::sleep(Duration::from_millis(rand::random::<u64>() % 1000)).await;
        server.kill9();
        let started = Instant::now();
        server.start()?;
        drill.until(Duration::from_secs(30), "/readyz", 200).await;
        *phase.recover.lock().unwrap() = Some(started.elapsed());
        tokio::time::sleep(load).await;
    }

    if let (None, Some(tmpfs)) = (&args.postgres, &args.tmpfs) {
        let phase = drill.ledger.begin("disk full");
        let ballast = fill(tmpfs, 32 * 1024)?;
        tokio::time::sleep(load).await;
        let ready_while_full = drill.until(Duration::from_millis(100), "/readyz", 200).await.is_some();
        if ready_while_full {
            eprintln!("note: /readyz said 200 with the disk full");
        }
        std::fs::remove_file(&ballast)?;
        let started = Instant::now();
        let before = phase.acknowledged.load(Ordering::Relaxed);
        while phase.acknowledged.load(Ordering::Relaxed) == before
            && started.elapsed() < Duration::from_secs(30)
        {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        drill.until(Duration::from_secs(30), "/readyz", 200).await;
        *phase.recover.lock().unwrap() = Some(started.elapsed());
        tokio::time::sleep(load).await;
    }

    if let Some(proxy) = &proxy {
        let phase = drill.ledger.begin("database outage 3 s");
        proxy.stop();
        let probe = Instant::now();
        let readyz = drill.until(Duration::from_millis(1500), "/readyz", 503).await;
        eprintln!("outage: /readyz said 503 after {readyz:?} (probe started {:?} ago)", probe.elapsed());
        tokio::time::sleep(Duration::from_secs(3)).await;
        let before = phase.acknowledged.load(Ordering::Relaxed);
        proxy.resume().await?;
        let started = Instant::now();
        while phase.acknowledged.load(Ordering::Relaxed) == before
            && started.elapsed() < Duration::from_secs(30)
        {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        *phase.recover.lock().unwrap() = Some(started.elapsed());
        tokio::time::sleep(load).await;
    }

    if args.overload > 0 {
        let phase = drill.ledger.begin(&format!("overload: {} logins at once", args.overload));
        let stop = Arc::new(AtomicBool::new(false));
        let refusals = Arc::new(Mutex::new(Vec::new()));
        let rss_before = server.memory("VmRSS");
        let mut flood = tokio::task::JoinSet::new();
        for _ in 0..args.overload {
            let (d, stop, refusals) = (drill.clone(), stop.clone(), refusals.clone());
            flood.spawn(async move { d.flood(&stop, &refusals).await });
        }
        tokio::time::sleep(load * 2).await;
        stop.store(true, Ordering::Relaxed);
        let started = Instant::now();
        while !matches!(drill.login_with(&drill.http).await, Outcome::Ok(_))
            && started.elapsed() < Duration::from_secs(60)
        {
            pause().await;
        }
        *phase.recover.lock().unwrap() = Some(started.elapsed());
        while flood.join_next().await.is_some() {}
        let mut refusals = refusals.lock().unwrap().clone();
        refusals.sort();
        let at =
            |q: f64| refusals.get(((refusals.len() as f64 - 1.0) * q) as usize).copied().unwrap_or_default();
        eprintln!(
            "overload: {} refusals (503 + Retry-After) took p50 {:?}, p99 {:?}, max {:?}; server RSS {} MiB before, peak {} MiB",
            refusals.len(),
            at(0.5),
            at(0.99),
            at(1.0),
            rss_before.unwrap_or_default() / 1024,
            server.memory("VmHWM").unwrap_or_default() / 1024,
        );
        tokio::time::sleep(load).await;
    }

    drill.ledger.stop.store(true, Ordering::Relaxed);
    for w in workers {
        let _ = w.await;
    }
    server.terminate();

    // The audit: everything acknowledged must be in the database.
    sqlx::any::install_default_drivers();
    let db = sqlx::AnyPool::connect(&direct_url).await?;
    // A refresh token names its session and generation; the session keeps the hashes of
    // its current and previous token. An acknowledged token is kept when its session got
    // at least as far, and holds it when it is one of the last two.
    let key = std::fs::read_to_string(work.path().join("keys").join("secret.key"))?;
    let key = latchkey::config::parse_secret_key(&key).map_err(anyhow::Error::msg)?;
    let refresh_tokens = latchkey::crypto::refresh::RefreshTokens::new(&key);
    let sessions: HashMap<String, (i64, Option<String>, Option<String>)> =
        sqlx::query_as::<_, (String, i64, Option<String>, Option<String>)>(
            "SELECT id, refresh_generation, refresh_hash, refresh_previous_hash FROM sessions",
        )
        .fetch_all(&db)
        .await?
        .into_iter()
        .map(|(id, generation, hash, previous)| (id, (generation, hash, previous)))
        .collect();
    let kept = |token: &str| {
        let Some(named) = refresh_tokens.read(token) else { return false };
        let Some((generation, hash, previous)) = sessions.get(&named.session_id.to_string()) else {
            return false;
        };
        let hash_of = |stored: &Option<String>| stored.as_deref() == Some(sha256_hex(token).as_str());
        match *generation - named.generation {
            0 => hash_of(hash),
            1 => hash_of(previous),
            later => later > 1,
        }
    };
    let users: HashSet<String> = sqlx::query_scalar::<_, String>("SELECT username FROM users")
        .fetch_all(&db)
        .await?
        .into_iter()
        .collect();
    let cc_audited: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM audit_events WHERE event = 'token_issued' AND detail LIKE 'grant=client_credentials%'",
    )
    .fetch_one(&db)
    .await?;
    let phases = drill.ledger.phases.lock().unwrap().clone();
    let mut lost = vec![0u64; phases.len()];
    for (token, phase) in drill.ledger.refresh.lock().unwrap().iter() {
        if !kept(token) {
            lost[*phase] += 1;
        }
    }
    for (name, phase) in drill.ledger.registered.lock().unwrap().iter() {
        if !users.contains(name) {
            lost[*phase] += 1;
        }
    }
    let cc_acked = drill.ledger.client_credentials.load(Ordering::Relaxed) as i64;

    let database = if args.postgres.is_some() { "PostgreSQL" } else { "SQLite" };
    println!("fault drill, {database}, refresh reuse grace {}, {} refresh chains", args.grace, args.chains);
    println!(
        "| phase | acknowledged | lost | wrongly revoked | 503 + Retry-After | no answer | other 5xx | time to recover |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|");
    for (i, p) in phases.iter().enumerate() {
        let recover = match *p.recover.lock().unwrap() {
            Some(d) => format!("{:.2} s", d.as_secs_f64()),
            None => "-".into(),
        };
        println!(
            "| {} | {} | {} | {} | {} | {} | {} | {} |",
            p.name,
            p.acknowledged.load(Ordering::Relaxed),
            lost[i],
            p.wrongly_revoked.load(Ordering::Relaxed),
            p.unavailable.load(Ordering::Relaxed),
            p.no_answer.load(Ordering::Relaxed),
            p.bad_errors.load(Ordering::Relaxed),
            recover
        );
    }
    println!(
        "client_credentials: {cc_acked} acknowledged, {cc_audited} audited{}",
        if cc_audited < cc_acked { " (MISSING AUDIT RECORDS)" } else { "" }
    );
    println!(
        "(time to recover: kill -9 from the kill to /readyz 200 after restart; disk full from freeing space to the next acknowledged write; outage from the database returning to the next acknowledged write; overload from the flood's end to the next acknowledged login)"
    );
    Ok(())
}
