//! What an operator sees at `/metrics` and at `/`: metric names and labels after real
//! requests, the latency buckets, and the landing page. The recorder is process-wide, so
//! each test looks only at the series of its own client ids and routes.

mod common;

use common::{PASSWORD, spawn_app, spawn_app_with};
use latchkey::config::RateLimit;
use latchkey::model::GrantType;

/// The value of the one series named `name` whose labels include every `labels` pair.
fn sample(metrics: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    let wanted: Vec<String> = labels.iter().map(|(k, v)| format!("{k}=\"{v}\"")).collect();
    metrics.lines().filter(|l| !l.starts_with('#')).find_map(|line| {
        let (series, value) = line.rsplit_once(' ')?;
        let (series_name, rest) = series.split_once('{').unwrap_or((series, ""));
        let label_list: Vec<&str> = rest.trim_end_matches('}').split(',').collect();
        (series_name == name && wanted.iter().all(|w| label_list.contains(&w.as_str())))
            .then(|| value.parse().unwrap())
    })
}

async fn scrape(app: &common::TestApp) -> String {
    let resp = app.http.get(app.url("/metrics")).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    resp.text().await.unwrap()
}

#[tokio::test]
async fn token_requests_show_up_by_route_grant_and_client() {
    let app = spawn_app().await;
    let client = app
        .create_client(
            "metrics-web",
            false,
            &[GrantType::Password, GrantType::RefreshToken],
            "openid api",
            &[],
        )
        .await;
    let machine = app.create_client("metrics-m2m", false, &[GrantType::ClientCredentials], "api", &[]).await;
    let user = app.create_user("mel", &[]).await;

    // A password grant runs argon2 (tens of milliseconds): far above the 1 ms bucket. No
    // other test in this binary gets a 200 from the token endpoint, so this is the only
    // request in that series at this point.
    let tokens = app.login(&client, "mel").await;
    let m = scrape(&app).await;
    let token_route = [("method", "POST"), ("route", "/oauth/token"), ("status", "200")];
    let bucket = |le| {
        let mut labels = token_route.to_vec();
        labels.push(("le", le));
        sample(&m, "latchkey_http_request_duration_seconds_bucket", &labels)
    };
    assert_eq!(sample(&m, "latchkey_http_request_duration_seconds_count", &token_route), Some(1.0), "{m}");
    assert_eq!(bucket("0.001"), Some(0.0), "a slow request is not counted as under 1 ms: {m}");
    assert_eq!(bucket("10"), Some(1.0));
    assert_eq!(bucket("+Inf"), Some(1.0));
    assert!(m.contains("# TYPE latchkey_http_request_duration_seconds histogram"));

    let refresh = tokens["refresh_token"].as_str().unwrap();
    let resp = app
        .post_form("/oauth/token", &client, &[("grant_type", "refresh_token"), ("refresh_token", refresh)])
        .await;
    assert_eq!(resp.status(), 200);
    // The spent refresh token again: reuse, the session ends.
    let resp = app
        .post_form("/oauth/token", &client, &[("grant_type", "refresh_token"), ("refresh_token", refresh)])
        .await;
    assert_eq!(resp.status(), 400);
    let resp = app.password_grant(&client, "mel", "not the password", None).await;
    assert_eq!(resp.status(), 400);
    let resp = app.post_form("/oauth/token", &machine, &[("grant_type", "client_credentials")]).await;
    assert_eq!(resp.status(), 200);
    // A route with an id in it, and a path that matches no route.
    let resp = app.http.get(app.url(&format!("/admin/users/{}", user.id))).send().await.unwrap();
    assert_eq!(resp.status(), 401);
    let resp = app.http.get(app.url("/no/such/path")).send().await.unwrap();
    assert_eq!(resp.status(), 404);

    let m = scrape(&app).await;
    let issued =
        |grant, client| sample(&m, "latchkey_tokens_issued_total", &[("grant", grant), ("client", client)]);
    assert_eq!(issued("password", "metrics-web"), Some(1.0), "{m}");
    assert_eq!(issued("refresh_token", "metrics-web"), Some(1.0));
    assert_eq!(issued("client_credentials", "metrics-m2m"), Some(1.0));
    assert_eq!(sample(&m, "latchkey_login_failures_total", &[("client", "metrics-web")]), Some(1.0));
    assert_eq!(sample(&m, "latchkey_refresh_token_reuse_total", &[("client", "metrics-web")]), Some(1.0));

    assert_eq!(sample(&m, "latchkey_http_requests_total", &token_route), Some(3.0));
    assert!(
        sample(&m, "latchkey_http_requests_total", &[("route", "/admin/users/{id}"), ("status", "401")])
            .is_some(),
        "the route template, not the path: {m}"
    );
    assert!(
        sample(&m, "latchkey_http_requests_total", &[("route", "unmatched"), ("status", "404")]).is_some()
    );
    // The client_credentials token's record went through the group commit.
    let commits = sample(&m, "latchkey_group_commits_total", &[]).unwrap_or_default();
    let writes = sample(&m, "latchkey_group_commit_writes_total", &[]).unwrap_or_default();
    assert!(commits >= 1.0 && writes >= commits, "{m}");
    assert!(sample(&m, "latchkey_group_commit_busy_seconds", &[]).is_some_and(|s| s > 0.0));
    assert!(!m.contains(&user.id), "no ids in labels");
    assert!(!m.contains("/no/such/path"), "no raw paths in labels");

    // Resources, sampled at scrape time.
    assert!(sample(&m, "latchkey_db_pool_connections", &[("state", "idle")]).is_some(), "{m}");
    assert!(sample(&m, "latchkey_db_pool_connections", &[("state", "in_use")]).is_some());
    let wait = sample(&m, "latchkey_db_pool_acquire_wait_seconds", &[]).expect("pool wait sampled");
    assert!((0.0..1.0).contains(&wait), "{wait}");
    assert!(sample(&m, "latchkey_argon2_permits_available", &[]).unwrap() >= 1.0);
    assert!(!m.contains(PASSWORD) && !m.contains(refresh), "no secrets");
}

#[tokio::test]
async fn refusals_are_counted_by_limit_lockouts_and_mfa() {
    let app = spawn_app_with(|s| {
        s.rate_limit_login = RateLimit::PerPeriod { count: 6, period: std::time::Duration::from_secs(3600) }
    })
    .await;
    let client = app.create_client("metrics-limited", false, &[GrantType::Password], "api", &[]).await;
    app.create_user("lou", &[]).await;
    let before = sample(&scrape(&app).await, "latchkey_lockouts_total", &[]).unwrap_or(0.0);
    // The fifth wrong password locks the account (once: attempts while locked neither count
    // nor extend it); the sixth attempt is allowed, the seventh is over the login limit.
    for _ in 0..6 {
        let resp = app.password_grant(&client, "lou", "not the password", None).await;
        assert_eq!(resp.status(), 400);
    }
    let resp = app.password_grant(&client, "lou", "not the password", None).await;
    assert_eq!(resp.status(), 429);

    // Failure bookkeeping runs after the answer: wait for it.
    let mut m = String::new();
    for _ in 0..50 {
        m = scrape(&app).await;
        if sample(&m, "latchkey_lockouts_total", &[]).unwrap_or(0.0) >= before + 1.0 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert!(sample(&m, "latchkey_lockouts_total", &[]).unwrap() >= before + 1.0, "{m}");
    assert_eq!(sample(&m, "latchkey_login_failures_total", &[("client", "metrics-limited")]), Some(6.0));
    assert!(sample(&m, "latchkey_rate_limited_total", &[("limit", "login")]).unwrap() >= 1.0);
    assert!(
        sample(&m, "latchkey_http_requests_total", &[("route", "/oauth/token"), ("status", "429")]).is_some()
    );
}

#[tokio::test]
async fn the_landing_page_is_html_with_links() {
    let app = spawn_app().await;
    let resp = app.http.get(app.url("/")).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    let h = resp.headers().clone();
    assert!(h["content-type"].to_str().unwrap().starts_with("text/html"));
    assert_eq!(h["x-content-type-options"], "nosniff");
    assert_eq!(h["x-frame-options"], "DENY");
    let csp = h["content-security-policy"].to_str().unwrap();
    assert!(csp.contains("default-src 'none'") && !csp.contains("script-src"), "{csp}");
    let page = resp.text().await.unwrap();
    for link in ["/docs", "/.well-known/openid-configuration", "/.well-known/jwks.json"] {
        assert!(page.contains(&format!("href=\"{link}\"")), "{link}: {page}");
    }
    assert!(page.contains("latchkey") && page.contains(&app.base));
    assert!(!page.contains("<script"));

    let icon = app.http.get(app.url("/favicon.ico")).send().await.unwrap();
    assert_eq!(icon.status(), 200);
    assert_eq!(icon.headers()["content-type"], "image/svg+xml");
    assert!(icon.text().await.unwrap().starts_with("<svg"));

    // Neither is part of the API document.
    let spec: serde_json::Value = app.get_json("/openapi.json").await;
    assert!(spec["paths"].get("/").is_none() && spec["paths"].get("/favicon.ico").is_none());
}

/// The dashboard, the README's table and the code name the same metrics, so a rename cannot
/// leave an empty panel behind.
#[test]
fn the_dashboard_and_readme_name_metrics_the_code_records() {
    let read = |path: &str| {
        std::fs::read_to_string(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(path)).unwrap()
    };
    let names = |text: &str| -> std::collections::BTreeSet<String> {
        text.match_indices("latchkey_")
            .map(|(i, _)| {
                text[i..].chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect::<String>()
            })
            .map(|n| n.trim_end_matches("_bucket").to_owned())
            .collect()
    };
    let code = names(&read("src/telemetry/metrics.rs"));
    let readme = read("README.md");
    let monitoring = &readme[readme.find("### Monitoring").expect("a Monitoring section")..];
    let documented = names(monitoring);
    let dashboard = names(&read("docs/grafana-dashboard.json"));
    assert_eq!(documented, code, "README's Monitoring table and src/telemetry/metrics.rs");
    assert!(!dashboard.is_empty() && dashboard.is_subset(&code), "{:?}", dashboard.difference(&code));
}
