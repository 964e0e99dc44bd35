//! `spawn_app`: the real server on a random port, over a fresh real database — a SQLite
//! file in a temp dir, or a new PostgreSQL database when LATCHKEY_TEST_DATABASE_URL is set.
#![allow(dead_code)] // each test binary uses its own part of the harness

use latchkey::account::{self, NewUser};
use latchkey::config::{RawSettings, Settings};
use latchkey::model::User;
use latchkey::model::{ClientId, GrantType, Scope};
use latchkey::model::{Email, Password, Role, Username};
use latchkey::oauth::client::{self, NewClient, RegisteredClient};
use latchkey::services::Services;
use serde_json::Value;
use sqlx::Connection;

pub struct TestApp {
    pub base: String,
    pub svc: Services,
    pub http: reqwest::Client,
    pub dir: tempfile::TempDir,
    pub database_url: String,
}

pub const PASSWORD: &str = "correct horse battery staple";

/// The contract's defaults, pointed at a temp dir and a fresh database, with mail to files
/// and rate limits off (tests that need them turn them on).
pub async fn test_settings(port: u16, dir: &std::path::Path) -> Settings {
    RawSettings {
        bind: format!("127.0.0.1:{port}"),
        database_url: fresh_database(dir).await,
        keys_dir: dir.join("keys"),
        mail: format!("dir:{}", dir.join("mail").display()),
        rate_limit_login: "off".into(),
        rate_limit_refresh: "off".into(),
        rate_limit_register: "off".into(),
        ..RawSettings::default()
    }
    .parse()
    .unwrap()
}

/// A new, empty database for one test.
pub async fn fresh_database(dir: &std::path::Path) -> String {
    match std::env::var("LATCHKEY_TEST_DATABASE_URL") {
        Ok(admin_url) if !admin_url.is_empty() => {
            let name = format!("latchkey_test_{}", uuid::Uuid::new_v4().simple());
            let mut conn =
                sqlx::PgConnection::connect(&admin_url).await.expect("connect to LATCHKEY_TEST_DATABASE_URL");
            sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
                .execute(&mut conn)
                .await
                .unwrap();
            let (base, _) = admin_url.rsplit_once('/').expect("a database URL ends in /dbname");
            format!("{base}/{name}")
        }
        _ => format!("sqlite://{}?mode=rwc", dir.join("latchkey.db").display()),
    }
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with(|_| {}).await
}

pub async fn spawn_app_with(adjust: impl FnOnce(&mut Settings)) -> TestApp {
    let dir = tempfile::tempdir().unwrap();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let mut settings = test_settings(port, dir.path()).await;
    adjust(&mut settings);
    let database_url = settings.database_url.clone();
    let svc = latchkey::app::open(settings).await.expect("open services");
    tokio::spawn(latchkey::app::run(svc.clone(), listener));
    TestApp {
        base: format!("http://127.0.0.1:{port}"),
        svc,
        http: reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap(),
        dir,
        database_url,
    }
}

/// A second server on the same database, keys dir and issuer, with its own clock.
pub async fn spawn_replica(first: &TestApp) -> TestApp {
    let database_url = first.database_url.clone();
    let keys_dir = first.dir.path().join("keys");
    let issuer = first.svc.settings().issuer.clone();
    spawn_app_with(move |s| {
        s.database_url = database_url;
        s.keys_dir = keys_dir;
        s.issuer = issuer;
    })
    .await
}

/// What a test client needs to call the token endpoint.
#[derive(Debug, Clone)]
pub struct TestClient {
    pub id: String,
    pub secret: Option<String>,
}

impl From<RegisteredClient> for TestClient {
    fn from(c: RegisteredClient) -> Self {
        TestClient { id: c.client_id, secret: c.client_secret }
    }
}

impl TestApp {
    /// How many refresh-token grants the audit log records as issued.
    pub async fn refreshes_audited(&self) -> i64 {
        sqlx::query_scalar(
            "SELECT COUNT(*) FROM audit_events WHERE event = 'token_issued' AND detail LIKE 'grant=refresh_token%'",
        )
        .fetch_one(self.svc.db().pool())
        .await
        .unwrap()
    }

    /// Puts `session_id` back the way a latchkey before refresh-token generations left it
    /// (its tokens in `refresh_tokens`), with one token per entry of `used_at`, returned
    /// in that order.
    pub async fn make_legacy_session(&self, session_id: &str, used_at: &[Option<i64>]) -> Vec<String> {
        let pool = self.svc.db().pool();
        sqlx::query(
            "UPDATE sessions SET refresh_generation = 0, refresh_hash = NULL, refresh_previous_hash = NULL,
                    refresh_scope = NULL, refresh_expires_at = NULL, refresh_rotated_at = NULL WHERE id = $1",
        )
        .bind(session_id)
        .execute(pool)
        .await
        .unwrap();
        let mut tokens = Vec::new();
        for used_at in used_at {
            let token = latchkey::crypto::secrets::random_token();
            sqlx::query(
                "INSERT INTO refresh_tokens (hash, session_id, scope, created_at, expires_at, used_at)
                 VALUES ($1, $2, 'openid profile', $3, $4, $5)",
            )
            .bind(latchkey::crypto::secrets::sha256_hex(&token))
            .bind(session_id)
            .bind(self.svc.now())
            .bind(self.svc.now() + 3600)
            .bind(used_at)
            .execute(pool)
            .await
            .unwrap();
            tokens.push(token);
        }
        tokens
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    pub async fn create_user(&self, username: &str, roles: &[&str]) -> User {
        let new = NewUser {
            username: Username::parse(username).unwrap(),
            email: Email::parse(&format!("{username}@example.com")).unwrap(),
            password: Password::new_checked(PASSWORD.into(), &[]).unwrap(),
            roles: roles.iter().map(|r| Role::parse(r).unwrap()).collect(),
            email_verified: true,
        };
        account::create_user(&self.svc, new).await.unwrap()
    }

    /// A client with the given grants and scopes; `id` fixed for readability.
    pub async fn create_client(
        &self,
        id: &str,
        public: bool,
        grants: &[GrantType],
        scopes: &str,
        audiences: &[&str],
    ) -> TestClient {
        let new = NewClient {
            name: format!("test client {id}"),
            id: Some(ClientId::parse(id).unwrap()),
            public,
            grants: grants.to_vec(),
            scopes: Scope::parse(scopes).unwrap(),
            audiences: audiences.iter().map(|a| (*a).to_owned()).collect(),
            require_mfa: false,
            redirect_uris: Vec::new(),
            post_logout_redirect_uris: Vec::new(),
            first_party: false,
        };
        client::register(&self.svc, new).await.unwrap().into()
    }

    /// The usual confidential web client: password + refresh, openid profile email api, and
    /// latchkey's own `account` and `admin` (dropped from the default scope of non-admins).
    pub async fn web_client(&self) -> TestClient {
        self.create_client(
            "web",
            false,
            &[GrantType::Password, GrantType::RefreshToken],
            "openid profile email api account admin",
            &[],
        )
        .await
    }

    /// POSTs a form to `path` with `client_secret_basic` (or just client_id if public).
    pub async fn post_form(
        &self,
        path: &str,
        client: &TestClient,
        form: &[(&str, &str)],
    ) -> reqwest::Response {
        let mut req = self.http.post(self.url(path));
        let mut fields: Vec<(&str, &str)> = form.to_vec();
        match &client.secret {
            Some(secret) => req = req.basic_auth(&client.id, Some(secret)),
            None => fields.push(("client_id", &client.id)),
        }
        req.form(&fields).send().await.unwrap()
    }

    pub async fn password_grant(
        &self,
        client: &TestClient,
        username: &str,
        password: &str,
        scope: Option<&str>,
    ) -> reqwest::Response {
        let mut form = vec![("grant_type", "password"), ("username", username), ("password", password)];
        if let Some(scope) = scope {
            form.push(("scope", scope));
        }
        self.post_form("/oauth/token", client, &form).await
    }

    /// Logs in and returns the token response body (asserting success).
    pub async fn login(&self, client: &TestClient, username: &str) -> Value {
        let resp = self.password_grant(client, username, PASSWORD, None).await;
        assert_eq!(resp.status(), 200, "login failed: {}", resp.text().await.unwrap());
        resp.json().await.unwrap()
    }

    pub async fn introspect(&self, client: &TestClient, token: &str) -> Value {
        let resp = self.post_form("/oauth/introspect", client, &[("token", token)]).await;
        assert_eq!(resp.status(), 200);
        resp.json().await.unwrap()
    }

    /// GETs `path` and parses the body as JSON (discovery, JWKS, …).
    pub async fn get_json(&self, path: &str) -> Value {
        self.http.get(self.url(path)).send().await.unwrap().json().await.unwrap()
    }

    pub async fn get_bearer(&self, path: &str, token: &str) -> reqwest::Response {
        self.http.get(self.url(path)).bearer_auth(token).send().await.unwrap()
    }
}

/// Decodes the (unverified) JSON of a JWT segment: 0 header, 1 claims.
pub fn jwt_part(token: &str, index: usize) -> Value {
    use base64::Engine;
    let part = token.split('.').nth(index).unwrap();
    serde_json::from_slice(&base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(part).unwrap()).unwrap()
}

/// Like `spawn_app`, with the `Services` adjusted before the server starts (e.g. a
/// deployment's own second-factor policy).
pub async fn spawn_app_with_services(adjust: impl FnOnce(Services) -> Services) -> TestApp {
    let dir = tempfile::tempdir().unwrap();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let settings = test_settings(port, dir.path()).await;
    let database_url = settings.database_url.clone();
    let svc = adjust(latchkey::app::open(settings).await.expect("open services"));
    tokio::spawn(latchkey::app::run(svc.clone(), listener));
    TestApp {
        base: format!("http://127.0.0.1:{port}"),
        svc,
        http: reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap(),
        dir,
        database_url,
    }
}

/// A TCP proxy in front of a database that a test can stop (every connection cut, new
/// ones refused) and start again on the same port: a database outage without touching
/// the database.
pub struct TcpProxy {
    pub port: u16,
    target: std::net::SocketAddr,
    running: std::sync::Mutex<Option<tokio::task::JoinHandle<()>>>,
}

impl TcpProxy {
    pub async fn start(target: std::net::SocketAddr) -> TcpProxy {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let proxy = TcpProxy { port, target, running: std::sync::Mutex::new(None) };
        proxy.serve(listener);
        proxy
    }

    fn serve(&self, listener: tokio::net::TcpListener) {
        let target = self.target;
        // Aborting this task drops the listener and, through the JoinSet, every piped
        // connection: clients see their sockets close, and new connections are refused.
        let task = tokio::spawn(async move {
            let mut pipes = tokio::task::JoinSet::new();
            while let Ok((mut inbound, _)) = listener.accept().await {
                pipes.spawn(async move {
                    if let Ok(mut outbound) = tokio::net::TcpStream::connect(target).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
            }
        });
        *self.running.lock().unwrap() = Some(task);
    }

    pub async fn stop(&self) {
        if let Some(task) = self.running.lock().unwrap().take() {
            task.abort();
        }
        tokio::task::yield_now().await;
    }

    pub async fn resume(&self) {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", self.port)).await.unwrap();
        self.serve(listener);
    }

    /// `url` with its host and port replaced by the proxy's.
    pub fn route(&self, url: &str) -> String {
        let mut url = url::Url::parse(url).unwrap();
        url.set_host(Some("127.0.0.1")).unwrap();
        url.set_port(Some(self.port)).unwrap();
        url.to_string()
    }
}
