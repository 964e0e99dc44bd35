//! Two replicas on one database: what one changes, the other sees. Clients and the state
//! of access tokens (revoked, session ended) are kept in memory for `CACHE_TTL`, so a
//! change made elsewhere is seen within it, and one made through the same replica at once.
//! On PostgreSQL the replicas also tell each other (LISTEN/NOTIFY), which the last test
//! shows with copies that would outlive it.

mod common;

use common::{TestApp, TestClient, spawn_app, spawn_replica};
use latchkey::admin::{self, Actor};
use latchkey::model::GrantType;
use latchkey::store::cache::CACHE_TTL;
use serde_json::Value;
use std::future::Future;
use std::time::Duration;

async fn client_credentials(app: &TestApp, client: &TestClient) -> reqwest::Response {
    app.post_form("/oauth/token", client, &[("grant_type", "client_credentials")]).await
}

#[tokio::test]
async fn a_revocation_on_one_replica_is_seen_by_introspection_on_the_other_within_the_cache_time() {
    let a = spawn_app().await;
    let b = spawn_replica(&a).await;
    a.create_user("alice", &[]).await;
    let web = a.web_client().await;
    let tokens = b.login(&web, "alice").await;
    let access = tokens["access_token"].as_str().unwrap();
    // Both replicas have the token's state in memory now.
    assert_eq!(a.introspect(&web, access).await["active"], true);
    assert_eq!(b.introspect(&web, access).await["active"], true);

    let resp =
        a.post_form("/oauth/revoke", &web, &[("token", tokens["refresh_token"].as_str().unwrap())]).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(a.introspect(&web, access).await["active"], false, "the replica that revoked, at once");
    tokio::time::sleep(CACHE_TTL + CACHE_TTL / 2).await;
    assert_eq!(b.introspect(&web, access).await["active"], false, "the other replica");
}

#[tokio::test]
async fn a_client_rotated_or_deleted_on_one_replica_is_refused_on_the_other_within_the_cache_time() {
    let a = spawn_app().await;
    let b = spawn_replica(&a).await;
    let old = a.create_client("m2m", false, &[GrantType::ClientCredentials], "api", &[]).await;
    // Both replicas have the client in memory now.
    assert_eq!(client_credentials(&a, &old).await.status(), 200);
    let resp = client_credentials(&b, &old).await;
    assert_eq!(resp.status(), 200);
    let token: Value = resp.json().await.unwrap();
    let token = token["access_token"].as_str().unwrap().to_owned();

    // `tokens_valid_after` counts in seconds: a token from the rotation's own second stays.
    a.svc.clock().advance(std::time::Duration::from_secs(1));
    let rotated = admin::clients::rotate_secret(&a.svc, &Actor::cli(), "m2m").await.unwrap();
    let new = TestClient { id: "m2m".into(), secret: rotated.client_secret };
    // The replica that made the change knows at once.
    assert_eq!(client_credentials(&a, &old).await.status(), 401);
    // The other within the cache time.
    tokio::time::sleep(CACHE_TTL + CACHE_TTL / 2).await;
    assert_eq!(client_credentials(&b, &old).await.status(), 401, "the old secret on the other replica");
    assert_eq!(client_credentials(&b, &new).await.status(), 200);
    assert_eq!(b.introspect(&new, &token).await["active"], false, "tokens got with the old secret");

    admin::clients::delete(&a.svc, &Actor::cli(), "m2m").await.unwrap();
    assert_eq!(client_credentials(&a, &new).await.status(), 401);
    tokio::time::sleep(CACHE_TTL + CACHE_TTL / 2).await;
    assert_eq!(client_credentials(&b, &new).await.status(), 401, "a deleted client on the other replica");
}

/// Asks `check` every 20 ms until it says yes; `false` after 10 s. A bound for a test that
/// would otherwise hang, far above a notification's milliseconds, not a timing claim.
async fn eventually<F, Fut>(mut check: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while tokio::time::Instant::now() < deadline {
        if check().await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    false
}

#[tokio::test]
async fn on_postgresql_the_other_replica_is_told_of_changes_and_listens_again_after_a_drop() {
    let a = spawn_app().await;
    if !a.database_url.starts_with("postgres") {
        return;
    }
    let b = spawn_replica(&a).await;
    // Copies that outlive the test: only a notification can make b drop them.
    b.svc.db().keep_copies_for(Duration::from_secs(3600));
    a.create_user("alice", &[]).await;
    let web = a.web_client().await;
    let tokens = b.login(&web, "alice").await;
    let access = tokens["access_token"].as_str().unwrap();
    assert_eq!(b.introspect(&web, access).await["active"], true);
    let resp =
        a.post_form("/oauth/revoke", &web, &[("token", tokens["refresh_token"].as_str().unwrap())]).await;
    assert_eq!(resp.status(), 200);
    assert!(
        eventually(|| async { b.introspect(&web, access).await["active"] == false }).await,
        "b still calls a revoked session's token active"
    );

    let m2m = a.create_client("m2m", false, &[GrantType::ClientCredentials], "api", &[]).await;
    assert_eq!(client_credentials(&b, &m2m).await.status(), 200);
    admin::clients::delete(&a.svc, &Actor::cli(), "m2m").await.unwrap();
    assert!(
        eventually(|| async { client_credentials(&b, &m2m).await.status() == 401 }).await,
        "b still takes a deleted client"
    );

    // A change nobody announced (made straight in the database) stays unseen on b while its
    // listener lives. When the listening connections end (a database restart, a proxy's
    // timeout), b listens again and drops every copy, as it may have missed announcements.
    let tokens = b.login(&web, "alice").await;
    let access = tokens["access_token"].as_str().unwrap();
    assert_eq!(b.introspect(&web, access).await["active"], true);
    sqlx::query("UPDATE sessions SET revoked_at = 1").execute(a.svc.db().pool()).await.unwrap();
    assert_eq!(b.introspect(&web, access).await["active"], true, "b's copy, unannounced");
    let ended = sqlx::query(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity
         WHERE datname = current_database() AND query LIKE 'LISTEN%'",
    )
    .fetch_all(a.svc.db().pool())
    .await
    .unwrap();
    assert_eq!(ended.len(), 2, "one listener per replica");
    assert!(
        eventually(|| async { b.introspect(&web, access).await["active"] == false }).await,
        "b, listening again, still answers from copies older than its new connection"
    );
}

async fn revoke(app: &TestApp, client: &TestClient, token: &str) -> reqwest::StatusCode {
    app.post_form("/oauth/revoke", client, &[("token", token)]).await.status()
}

/// Two replicas whose copies outlive the test (only a dropped copy reads the database
/// again), a user alice and a web client.
async fn replicas_keeping_copies() -> (TestApp, TestApp, TestClient) {
    let a = spawn_app().await;
    let b = spawn_replica(&a).await;
    for app in [&a, &b] {
        app.svc.db().keep_copies_for(Duration::from_secs(3600));
    }
    a.create_user("alice", &[]).await;
    let web = a.web_client().await;
    (a, b, web)
}

/// Revoking what is already revoked changes nothing, so no copy is dropped and nothing is
/// announced: otherwise any client could empty every replica's copies, and send every
/// introspection to the database, by revoking one of its own tokens again and again, or by
/// presenting a spent refresh token of an ended session.
#[tokio::test]
async fn revoking_what_is_already_revoked_drops_no_copies() {
    let (a, b, web) = replicas_keeping_copies().await;
    // Tokens ended once, for real: an access token, and a session whose first refresh
    // token was spent before the session was revoked.
    let ended = a.login(&web, "alice").await;
    let access_ended = ended["access_token"].as_str().unwrap();
    let spent = ended["refresh_token"].as_str().unwrap();
    let refresh = [("grant_type", "refresh_token"), ("refresh_token", spent)];
    let rotated = a.post_form("/oauth/token", &web, &refresh).await;
    assert_eq!(rotated.status(), 200);
    let rotated: Value = rotated.json().await.unwrap();
    assert_eq!(revoke(&a, &web, access_ended).await, 200);
    assert_eq!(revoke(&a, &web, rotated["refresh_token"].as_str().unwrap()).await, 200);

    // A live token whose state both replicas hold, then ended behind their backs.
    let live = a.login(&web, "alice").await;
    let access = live["access_token"].as_str().unwrap();
    assert_eq!(a.introspect(&web, access).await["active"], true);
    assert_eq!(b.introspect(&web, access).await["active"], true);
    sqlx::query("UPDATE sessions SET revoked_at = 1").execute(a.svc.db().pool()).await.unwrap();

    assert_eq!(revoke(&a, &web, access_ended).await, 200);
    assert_eq!(revoke(&a, &web, rotated["refresh_token"].as_str().unwrap()).await, 200);
    let reused = a.post_form("/oauth/token", &web, &refresh).await;
    assert_eq!(reused.status(), 400, "a spent token of an ended session");
    assert_eq!(a.introspect(&web, access).await["active"], true, "a's copy");
    assert_eq!(b.introspect(&web, access).await["active"], true, "b's copy");

    // The control: a revocation that ends something drops the copies.
    let other = a.login(&web, "alice").await;
    assert_eq!(revoke(&a, &web, other["refresh_token"].as_str().unwrap()).await, 200);
    assert_eq!(a.introspect(&web, access).await["active"], false, "a, after a real revocation");
}

/// Revoking one access token drops the copy of that token alone, here and on PostgreSQL on
/// the other replica: a client that revokes its tokens as it goes (a logout) empties nobody's
/// cache.
#[tokio::test]
async fn revoking_one_access_token_keeps_the_copies_of_the_others() {
    let (a, b, web) = replicas_keeping_copies().await;
    let kept = a.login(&web, "alice").await["access_token"].as_str().unwrap().to_owned();
    let revoked = a.login(&web, "alice").await["access_token"].as_str().unwrap().to_owned();
    for token in [&kept, &revoked] {
        assert_eq!(a.introspect(&web, token).await["active"], true);
        assert_eq!(b.introspect(&web, token).await["active"], true);
    }
    // Ended behind the replicas' backs: only a dropped copy reads this.
    sqlx::query("UPDATE sessions SET revoked_at = 1").execute(a.svc.db().pool()).await.unwrap();

    assert_eq!(revoke(&a, &web, &revoked).await, 200);
    assert_eq!(a.introspect(&web, &revoked).await["active"], false, "the revoked token, at once");
    assert_eq!(a.introspect(&web, &kept).await["active"], true, "a's copy of the other token");
    assert_eq!(b.introspect(&web, &kept).await["active"], true, "b's copy of the other token");
    if a.database_url.starts_with("postgres") {
        assert!(
            eventually(|| async { b.introspect(&web, &revoked).await["active"] == false }).await,
            "b was not told of the revoked token"
        );
    }
}
