//! The `latchkey` binary: commands, settings errors, and durability across `kill -9`.

mod common;

use std::io::Write;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_latchkey");

/// The binary with a private working directory and database, env cleared of settings.
fn latchkey(dir: &Path, db: &str) -> Command {
    let mut cmd = Command::new(BIN);
    cmd.current_dir(dir).env("LATCHKEY_LOG", "warn");
    for (name, _) in
        std::env::vars().filter(|(n, _)| n.starts_with("LATCHKEY_") && n != "LATCHKEY_TEST_DATABASE_URL")
    {
        cmd.env_remove(name);
    }
    cmd.env("LATCHKEY_DATABASE_URL", db);
    cmd
}

fn run_with_stdin(mut cmd: Command, input: &str) -> Output {
    let mut child = cmd.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    child.stdin.take().unwrap().write_all(input.as_bytes()).unwrap();
    child.wait_with_output().unwrap()
}

fn json_stdout(out: &Output) -> Value {
    assert!(out.status.success(), "stderr: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("stdout is JSON alone ({e}): {:?}", out.stdout))
}

async fn database(dir: &Path) -> String {
    common::fresh_database(dir).await
}

#[tokio::test]
async fn user_and_client_create_print_json() {
    let dir = tempfile::tempdir().unwrap();
    let db = database(dir.path()).await;
    let mut cmd = latchkey(dir.path(), &db);
    cmd.args([
        "user",
        "create",
        "--username",
        "Alice",
        "--email",
        "alice@example.com",
        "--role",
        "admin",
        "--password-stdin",
    ]);
    let user = json_stdout(&run_with_stdin(cmd, "correct horse battery staple\n"));
    assert_eq!(user["username"], "alice");
    assert_eq!(user["roles"], serde_json::json!(["admin"]));
    assert!(user["id"].is_string());
    let text = user.to_string();
    assert!(!text.contains("argon2") && !text.contains("horse"), "no hash, no password: {text}");

    // A weak password is refused with every reason on one line.
    let mut cmd = latchkey(dir.path(), &db);
    cmd.args(["user", "create", "--username", "bob", "--email", "bob@example.com", "--password-stdin"]);
    let out = run_with_stdin(cmd, "bob\n");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");

    let out = latchkey(dir.path(), &db)
        .args([
            "client", "create", "--name", "Web", "--id", "web", "--scope", "openid", "--grant", "password",
        ])
        .output()
        .unwrap();
    let client = json_stdout(&out);
    assert_eq!(client["client_id"], "web");
    assert_eq!(client["client_secret"].as_str().unwrap().len(), 43, "256-bit URL-safe secret");
    assert_eq!(client["grants"], serde_json::json!(["password"]));
    let out =
        latchkey(dir.path(), &db).args(["client", "create", "--name", "App", "--public"]).output().unwrap();
    let public = json_stdout(&out);
    assert!(public.get("client_secret").is_none());
    assert_eq!(public["grants"], serde_json::json!(["password", "refresh_token"]));

    let out = latchkey(dir.path(), &db)
        .args(["client", "create", "--name", "Web", "--id", "web"])
        .output()
        .unwrap();
    assert!(!out.status.success(), "duplicate client id");

    // Keys: one signing key created on first use, then a rotation.
    let keys = json_stdout(&latchkey(dir.path(), &db).args(["keys", "list"]).output().unwrap());
    assert_eq!(keys.as_array().unwrap().len(), 1);
    let keys =
        json_stdout(&latchkey(dir.path(), &db).args(["keys", "rotate", "--alg", "ES256"]).output().unwrap());
    let states: Vec<(&str, &str)> = keys
        .as_array()
        .unwrap()
        .iter()
        .map(|k| (k["alg"].as_str().unwrap(), k["state"].as_str().unwrap()))
        .collect();
    assert_eq!(states, [("RS256", "signing"), ("ES256", "pending")], "published at once, signing later");
    let out = latchkey(dir.path(), &db).args(["keys", "rotate", "--alg", "ES512"]).output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("RS256, ES256, EdDSA"));
}

/// Every CLI command that writes goes through the admin functions: checked like the admin
/// API, and on record in the audit log as `via=cli`.
#[tokio::test]
async fn cli_writes_are_checked_and_audited_like_the_admin_api() {
    let dir = tempfile::tempdir().unwrap();
    let db = database(dir.path()).await;
    let run = |args: &[&str]| latchkey(dir.path(), &db).args(args).output().unwrap();
    let with_password = |args: &[&str], password: &str| {
        let mut cmd = latchkey(dir.path(), &db);
        cmd.args(args);
        run_with_stdin(cmd, &format!("{password}\n"))
    };
    let create =
        ["user", "create", "--username", "alice", "--email", "alice@example.com", "--password-stdin"];
    let alice = json_stdout(&with_password(&create, "correct horse battery staple"));
    json_stdout(&run(&[
        "client",
        "create",
        "--name",
        "Web",
        "--id",
        "web",
        "--audience",
        "https://api.example",
    ]));
    // The admin API's checks hold at the command line too.
    let out = run(&["client", "create", "--name", "Bad", "--audience", "has space"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("not an audience"));
    json_stdout(&run(&["client", "rotate-secret", "web"]));
    json_stdout(&run(&["user", "disable", "alice"]));
    json_stdout(&run(&["user", "enable", "alice"]));
    json_stdout(&run(&["user", "unlock", "alice"]));
    json_stdout(&run(&["user", "set-roles", "alice", "--role", "user"]));
    let weak = with_password(&["user", "set-password", "alice", "--password-stdin"], "alice");
    assert!(!weak.status.success(), "the password policy applies");
    let set = json_stdout(&with_password(
        &["user", "set-password", "alice", "--password-stdin"],
        "a new long passphrase",
    ));
    assert_eq!(set["id"], alice["id"]);
    json_stdout(&run(&["client", "delete", "web"]));

    let pool = latchkey::store::Db::connect(&db).await.unwrap();
    let events: Vec<(String, String)> =
        sqlx::query_as("SELECT event, COALESCE(detail, '') FROM audit_events ORDER BY id")
            .fetch_all(pool.pool())
            .await
            .unwrap();
    let kinds: Vec<&str> = events.iter().map(|(e, _)| e.as_str()).collect();
    assert_eq!(
        kinds,
        [
            "admin_user_create",
            "admin_client_create",
            "admin_client_rotate_secret",
            "admin_user_disable",
            "admin_user_enable",
            "admin_user_unlock",
            "admin_user_update",
            "admin_user_set_password",
            "admin_client_delete",
        ]
    );
    assert!(events.iter().all(|(_, detail)| detail.starts_with("via=cli")), "{events:?}");
}

#[test]
fn bad_settings_stop_with_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        ("LATCHKEY_ACCESS_TOKEN_TTL", "15 minutes", "--access-token-ttl"),
        ("LATCHKEY_BIND", "nowhere", "--bind"),
        ("LATCHKEY_RATE_LIMIT_LOGIN", "lots", "--rate-limit-login"),
        ("LATCHKEY_ISSUER", "ftp://x", "--issuer"),
        ("LATCHKEY_DATABASE_URL", "mysql://x", "--database-url"),
        ("LATCHKEY_LOG_FORMAT", "xml", "--log-format"),
        ("LATCHKEY_TRUSTED_PROXIES", "10.0.0.0/99", "--trusted-proxies"),
        ("LATCHKEY_BIND", "0.0.0.0:8090", "--issuer"),
        ("LATCHKEY_REGISTRATION", "maybe", "--registration"),
        ("LATCHKEY_LOG", "degub", "LATCHKEY_LOG"),
        ("LATCHKEY_SIGNING_ALG", "HS256", "--signing-alg"),
    ];
    for (env, value, flag) in cases {
        let out =
            latchkey(dir.path(), "sqlite://x.db?mode=rwc").env(env, value).arg("serve").output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{env}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(stderr.trim().lines().count(), 1, "{env}: {stderr}");
        assert!(stderr.contains(flag) && stderr.contains(env), "{stderr}");
        assert!(!stderr.contains("panicked"), "{stderr}");
    }
    assert!(!dir.path().join("x.db").exists(), "nothing starts with a bad setting");
}

/// A server that cannot start says why in one line naming the thing at fault, and leaves
/// nothing behind (no secret key file) when the database cannot be opened.
#[test]
fn start_up_failures_name_their_cause_in_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("no-such-dir");
    let file = dir.path().join("a-file");
    std::fs::write(&file, "").unwrap();
    let sqlite = |p: &Path| format!("sqlite://{}?mode=rwc", p.display());
    let cases = [
        (sqlite(&missing.join("x.db")), None, missing.display().to_string()),
        (sqlite(&dir.path().join("ok.db")), Some(file.clone()), format!("--keys-dir {}", file.display())),
    ];
    for (db, keys_dir, expected) in cases {
        let mut cmd = latchkey(dir.path(), &db);
        if let Some(keys) = &keys_dir {
            cmd.env("LATCHKEY_KEYS_DIR", keys);
        }
        let out = cmd.arg("serve").output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{stderr}");
        assert_eq!(stderr.trim().lines().count(), 1, "one line: {stderr}");
        assert!(stderr.contains(&expected), "names {expected}: {stderr}");
    }
    assert!(!dir.path().join("keys").exists(), "nothing written before the database opened");
}

#[test]
fn help_never_prints_a_secret_from_the_environment() {
    let dir = tempfile::tempdir().unwrap();
    let secrets = [
        ("LATCHKEY_DATABASE_URL", "postgres://latchkey:db-hunter2@db.internal/latchkey"),
        ("LATCHKEY_MAIL", "smtp://mailer:smtp-hunter2@mail.internal:587"),
        ("LATCHKEY_SECRET_KEY", "c2VjcmV0LWh1bnRlcjItc2VjcmV0LWh1bnRlcjItISE="),
    ];
    for args in [&["--help"][..], &["serve", "--help"], &["user", "create", "--help"]] {
        let mut cmd = latchkey(dir.path(), secrets[0].1);
        cmd.envs(secrets).args(args);
        let out = cmd.output().unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(text.contains("LATCHKEY_DATABASE_URL"), "{text}");
        for (env, value) in secrets {
            assert!(!text.contains(value), "{args:?} printed {env}: {text}");
        }
    }
}

#[test]
fn openapi_needs_no_database() {
    let dir = tempfile::tempdir().unwrap();
    let out = latchkey(dir.path(), "sqlite://x.db?mode=rwc").arg("openapi").output().unwrap();
    let spec = json_stdout(&out);
    assert_eq!(spec["info"]["title"], "latchkey");
    assert!(!dir.path().join("x.db").exists() && !dir.path().join("keys").exists());
    let out = latchkey(dir.path(), "sqlite://x.db?mode=rwc").args(["openapi", "--yaml"]).output().unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).contains("openapi:"));
}

struct Server {
    child: Child,
    base: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_server(dir: &Path, db: &str, port: u16) -> Server {
    start_server_with(latchkey(dir, db), port, Stdio::null())
}

fn start_server_with(mut cmd: Command, port: u16, stderr: Stdio) -> Server {
    let child = cmd
        .args(["serve", "--bind", &format!("127.0.0.1:{port}")])
        .stdout(Stdio::null())
        .stderr(stderr)
        .spawn()
        .unwrap();
    let base = format!("http://127.0.0.1:{port}");
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "server did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
    Server { child, base }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// Through the CLI: user `alice` and confidential client `web`; returns the client secret.
fn seed_alice_and_web(dir: &Path, db: &str) -> String {
    let mut cmd = latchkey(dir, db);
    cmd.args(["user", "create", "--username", "alice", "--email", "alice@example.com", "--password-stdin"]);
    json_stdout(&run_with_stdin(cmd, "correct horse battery staple\n"));
    let out = latchkey(dir, db).args(["client", "create", "--name", "Web", "--id", "web"]).output().unwrap();
    json_stdout(&out)["client_secret"].as_str().unwrap().to_owned()
}

async fn token_request(server: &Server, secret: &str, form: &[(&str, &str)]) -> (u16, Value) {
    let resp = reqwest::Client::new()
        .post(format!("{}/oauth/token", server.base))
        .basic_auth("web", Some(secret))
        .form(form)
        .send()
        .await
        .unwrap();
    (resp.status().as_u16(), resp.json().await.unwrap())
}

#[tokio::test]
async fn acknowledged_writes_survive_kill_9() {
    let dir = tempfile::tempdir().unwrap();
    let db = database(dir.path()).await;
    let secret = seed_alice_and_web(dir.path(), &db);
    let port = free_port();

    let mut server = start_server(dir.path(), &db, port);
    let login =
        [("grant_type", "password"), ("username", "alice"), ("password", "correct horse battery staple")];
    let (status, login) = token_request(&server, &secret, &login).await;
    assert_eq!(status, 200);
    let r1 = login["refresh_token"].as_str().unwrap().to_owned();
    let (status, rotated) =
        token_request(&server, &secret, &[("grant_type", "refresh_token"), ("refresh_token", &r1)]).await;
    assert_eq!(status, 200);
    let r2 = rotated["refresh_token"].as_str().unwrap().to_owned();
    let kid = common::jwt_part(login["access_token"].as_str().unwrap(), 0)["kid"].clone();

    // SIGKILL: no graceful shutdown, no chance to flush anything.
    server.child.kill().unwrap();
    server.child.wait().unwrap();
    drop(server);

    let server = start_server(dir.path(), &db, port);
    let (status, again) =
        token_request(&server, &secret, &[("grant_type", "refresh_token"), ("refresh_token", &r2)]).await;
    assert_eq!(status, 200, "the rotated token was durably stored: {again}");
    assert_eq!(common::jwt_part(again["access_token"].as_str().unwrap(), 0)["kid"], kid, "same signing key");
    let (status, _) =
        token_request(&server, &secret, &[("grant_type", "refresh_token"), ("refresh_token", &r1)]).await;
    assert_eq!(status, 400, "the spent token stayed spent");
}

/// Rate-limit state is committed without waiting for the disk (a power cut may hand a few
/// units back), but a crash of the server itself must not reset a budget.
#[tokio::test]
async fn a_spent_login_budget_stays_spent_across_kill_9() {
    let dir = tempfile::tempdir().unwrap();
    let db = database(dir.path()).await;
    let secret = seed_alice_and_web(dir.path(), &db);
    let port = free_port();
    let server_with_budget = || {
        let mut cmd = latchkey(dir.path(), &db);
        cmd.env("LATCHKEY_RATE_LIMIT_LOGIN", "2/15m");
        start_server_with(cmd, port, Stdio::null())
    };
    let attempt = |password| [("grant_type", "password"), ("username", "alice"), ("password", password)];

    let mut server = server_with_budget();
    for _ in 0..2 {
        assert_eq!(token_request(&server, &secret, &attempt("wrong password")).await.0, 400);
    }
    server.child.kill().unwrap();
    server.child.wait().unwrap();
    drop(server);

    let server = server_with_budget();
    let (status, body) = token_request(&server, &secret, &attempt("correct horse battery staple")).await;
    assert_eq!(status, 429, "the two failures before the crash still count: {body}");
}

#[cfg(unix)]
#[tokio::test]
async fn sigterm_shuts_down_gracefully() {
    let dir = tempfile::tempdir().unwrap();
    let db = database(dir.path()).await;
    let mut server = start_server(dir.path(), &db, free_port());
    let status = reqwest::get(format!("{}/healthz", server.base)).await.unwrap().status();
    assert_eq!(status, 200);
    let pid = server.child.id().to_string();
    assert!(Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        if let Some(code) = server.child.try_wait().unwrap() {
            assert!(code.success(), "exit status {code}");
            break;
        }
        assert!(Instant::now() < deadline, "did not stop on SIGTERM");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[tokio::test]
async fn json_logs_carry_request_ids_and_no_secrets() {
    let dir = tempfile::tempdir().unwrap();
    let db = database(dir.path()).await;
    let secret = seed_alice_and_web(dir.path(), &db);

    let log_path = dir.path().join("server.log");
    let mut cmd = latchkey(dir.path(), &db);
    cmd.env("LATCHKEY_LOG_FORMAT", "json").env("LATCHKEY_LOG", "debug");
    let server = start_server_with(cmd, free_port(), Stdio::from(std::fs::File::create(&log_path).unwrap()));
    let login =
        [("grant_type", "password"), ("username", "alice"), ("password", "correct horse battery staple")];
    let (status, body) = token_request(&server, &secret, &login).await;
    assert_eq!(status, 200);
    let (status, _) = token_request(
        &server,
        &secret,
        &[("grant_type", "password"), ("username", "alice"), ("password", "wrong one!")],
    )
    .await;
    assert_eq!(status, 400);
    drop(server);

    let log = std::fs::read_to_string(&log_path).unwrap();
    let lines: Vec<Value> =
        log.lines().map(|l| serde_json::from_str(l).unwrap_or_else(|_| panic!("not JSON: {l}"))).collect();
    assert!(
        lines.iter().any(|l| l["span"]["id"].is_string() && l["status"] == 200),
        "request lines carry the request id: {log}"
    );
    // The "handled" line of each token request names the client, the grant, the caller's
    // address and, on failure, the OAuth error code.
    let handled: Vec<&Value> = lines.iter().filter(|l| l["message"] == "handled").collect();
    let ok = handled.iter().find(|l| l["status"] == 200).expect("a handled line for the login");
    assert_eq!(ok["span"]["client_id"], "web", "{ok}");
    assert_eq!(ok["span"]["grant_type"], "password");
    assert_eq!(ok["span"]["ip"], "127.0.0.1");
    assert!(ok["span"].get("error").is_none());
    let failed = handled.iter().find(|l| l["status"] == 400).expect("a handled line for the failure");
    assert_eq!(failed["span"]["error"], "invalid_grant", "{failed}");
    assert_eq!(failed["span"]["client_id"], "web");
    for secret in [
        secret.as_str(),
        "correct horse",
        "wrong one!",
        body["access_token"].as_str().unwrap(),
        body["refresh_token"].as_str().unwrap(),
    ] {
        assert!(!log.contains(secret), "the log leaks a secret");
    }
}

#[tokio::test]
async fn text_logs_carry_client_grant_and_error_code() {
    let dir = tempfile::tempdir().unwrap();
    let db = database(dir.path()).await;
    let secret = seed_alice_and_web(dir.path(), &db);

    let log_path = dir.path().join("server.log");
    let mut cmd = latchkey(dir.path(), &db);
    cmd.env("LATCHKEY_LOG", "info");
    let server = start_server_with(cmd, free_port(), Stdio::from(std::fs::File::create(&log_path).unwrap()));
    let wrong = [("grant_type", "password"), ("username", "alice"), ("password", "wrong one!")];
    assert_eq!(token_request(&server, &secret, &wrong).await.0, 400);
    drop(server);

    let log = std::fs::read_to_string(&log_path).unwrap();
    let line = log.lines().find(|l| l.contains("handled") && l.contains("status=400")).expect(&log);
    for field in ["ip=127.0.0.1", "client_id=web", "grant_type=password", "error=invalid_grant"] {
        assert!(line.contains(field), "{field} missing: {line}");
    }
    assert!(!log.contains(&secret) && !log.contains("wrong one!"), "the log leaks a secret");
}
