//! Regressions for what the schemathesis run of `.ci/schemathesis.sh` found.

mod common;

use common::spawn_app;
use serde_json::Value;

/// A JSON body without a Content-Type was a 415 that no operation documents: now it is
/// the contract's 400 for bad input, in the usual error shape, on public and Bearer
/// endpoints alike.
#[tokio::test]
async fn body_without_content_type_is_a_documented_400() {
    let app = spawn_app().await;
    app.create_user("root", &["admin"]).await;
    let client = app.web_client().await;
    let token = app.login(&client, "root").await["access_token"].as_str().unwrap().to_owned();

    let public =
        app.http.post(app.url("/account/register")).body(r#"{"username":"x"}"#).send().await.unwrap();
    let admin = app
        .http
        .patch(app.url("/admin/clients/web"))
        .bearer_auth(&token)
        .body(r#"{"name":"x"}"#)
        .send()
        .await
        .unwrap();
    for (resp, expected) in [(public, "application/json"), (admin, "application/json")] {
        assert_eq!(resp.status(), 400);
        let body: Value = resp.json().await.unwrap();
        assert_eq!(body["error"], "invalid_request");
        assert_eq!(body["error_description"], format!("send {expected}"));
    }

    // The token endpoint answered this already; it still names its own media type.
    let oauth = app.http.post(app.url("/oauth/token")).body("grant_type=password").send().await.unwrap();
    assert_eq!(oauth.status(), 400);
    let body: Value = oauth.json().await.unwrap();
    assert_eq!(body["error_description"], "send application/x-www-form-urlencoded");
}
