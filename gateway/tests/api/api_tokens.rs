use serde_json::{Value, json};

use crate::helpers::{TestApp, contains, error_code};

#[tokio::test]
async fn signup_login_token_bearer_revoke_round_trip() {
    let app = TestApp::spawn().await;
    let (client, user_id) = app.signed_up_user("tok@example.com").await;
    let created = app.create_token(&client, "laptop").await;
    let secret = created["token"].as_str().unwrap().to_string();
    assert!(secret.starts_with("rst_"));
    assert!(secret.starts_with(created["prefix"].as_str().unwrap()));
    assert_eq!(created["name"], "laptop");

    let api = reqwest::Client::new();
    let me: Value = app.json_bearer(&secret, "/api/me").await;
    assert_eq!(me["id"], user_id.as_str());
    assert_eq!(me["auth"], "api_token");

    let res = app.post(&client, "/api/tokens", &json!({ "name": "ci", "expires_in_days": 7 })).await;
    assert_eq!(res.status(), 201);
    let second: Value = res.json().await.unwrap();
    assert!(second["expires_at"].as_i64().unwrap() > second["created_at"].as_i64().unwrap());

    // Last use is recorded off the request path, in a batch: wait for it.
    crate::helpers::wait_until("the token's last use is recorded", || async {
        let list: Value = app.get(&client, "/api/tokens").await.json().await.unwrap();
        list["tokens"].as_array().unwrap().iter().any(|t| t["name"] == "laptop" && t["last_used_at"].is_i64())
    })
    .await;
    let list: Value = app.get(&client, "/api/tokens").await.json().await.unwrap();
    assert_eq!(list["tokens"].as_array().unwrap().len(), 2);
    let listed = serde_json::to_string(&list).unwrap();
    assert!(!listed.contains(&secret), "the list never shows the secret");
    assert!(!contains(&app.db_bytes(), &secret), "only the hash is stored");

    let id = created["id"].as_str().unwrap();
    let res = client.delete(app.url(&format!("/api/tokens/{id}"))).header("Origin", &app.origin).send().await.unwrap();
    assert_eq!(res.status(), 204);
    let res = api.get(app.url("/api/me")).bearer_auth(&secret).send().await.unwrap();
    assert_eq!(error_code(res).await, (401, "invalid_token".into()));
    let res = client.delete(app.url(&format!("/api/tokens/{id}"))).header("Origin", &app.origin).send().await.unwrap();
    assert_eq!(res.status(), 404, "revoking twice is a 404");
}

/// The probe: a leaked token minted a new one and revoked the others, so revoking it ended nothing.
#[tokio::test]
async fn an_api_token_cannot_manage_tokens() {
    let app = TestApp::spawn().await;
    let (client, _) = app.signed_up_user("leak@example.com").await;
    let leaked = app.create_token(&client, "leaked").await;
    let other = app.create_token(&client, "other").await;
    let bearer = leaked["token"].as_str().unwrap();
    let api = reqwest::Client::new();
    let mint = api.post(app.url("/api/tokens")).bearer_auth(bearer).json(&json!({ "name": "survivor" }));
    assert_eq!(error_code(mint.send().await.unwrap()).await, (403, "session_required".into()));
    let list = api.get(app.url("/api/tokens")).bearer_auth(bearer).send().await.unwrap();
    assert_eq!(error_code(list).await, (403, "session_required".into()));
    let other_id = other["id"].as_str().unwrap();
    let revoke = api.delete(app.url(&format!("/api/tokens/{other_id}"))).bearer_auth(bearer).send().await.unwrap();
    assert_eq!(error_code(revoke).await, (403, "session_required".into()));
    assert_eq!(app.count("api_tokens").await, 2, "nothing was minted");
    let me: Value = app.json_bearer(other["token"].as_str().unwrap(), "/api/me").await;
    assert_eq!(me["email"], "leak@example.com", "the other token was not revoked");
}

#[tokio::test]
async fn users_cannot_see_or_revoke_each_others_tokens() {
    let app = TestApp::spawn().await;
    let (alice, _) = app.signed_up_user("alice@example.com").await;
    let (bob, _) = app.signed_up_user("bob@example.com").await;
    let token = app.create_token(&alice, "alice's").await;
    let list: Value = app.get(&bob, "/api/tokens").await.json().await.unwrap();
    assert_eq!(list["tokens"].as_array().unwrap().len(), 0);
    let id = token["id"].as_str().unwrap();
    let res = bob.delete(app.url(&format!("/api/tokens/{id}"))).header("Origin", &app.origin).send().await.unwrap();
    assert_eq!(res.status(), 404);
    let me: Value = app.json_bearer(token["token"].as_str().unwrap(), "/api/me").await;
    assert_eq!(me["email"], "alice@example.com", "alice's token still works");
}

#[tokio::test]
async fn expired_forged_and_malformed_tokens_are_refused() {
    let app = TestApp::spawn().await;
    let (client, _) = app.signed_up_user("exp@example.com").await;
    let token = app.create_token(&client, "short-lived").await;
    app.sql("UPDATE api_tokens SET expires_at = 1 RETURNING 1").await;
    let api = reqwest::Client::new();
    let call = |bearer: String| api.get(app.url("/api/me")).header("authorization", bearer).send();
    assert_eq!(call(format!("Bearer {}", token["token"].as_str().unwrap())).await.unwrap().status(), 401);
    let forged = format!("Bearer rst_{}", "A".repeat(43));
    assert_eq!(error_code(call(forged).await.unwrap()).await, (401, "invalid_token".into()));
    for bad in ["Bearer rst_short", "Bearer ", "Basic dXNlcjpwYXNz", "rst_nobearer"] {
        assert_eq!(call(bad.to_string()).await.unwrap().status(), 401, "{bad}");
    }
}

#[tokio::test]
async fn bad_token_requests_get_clear_errors_and_write_nothing() {
    let app = TestApp::spawn().await;
    let (client, _) = app.signed_up_user("bad@example.com").await;
    let cases = [
        (json!({ "name": "" }), "invalid_name"),
        (json!({ "name": "x".repeat(65) }), "invalid_name"),
        (json!({ "name": "tab\there" }), "invalid_name"),
        (json!({ "name": "ok", "expires_in_days": 0 }), "invalid_expiry"),
        (json!({ "name": "ok", "expires_in_days": 99999 }), "invalid_expiry"),
        (json!({ "name": "ok", "expires_in_days": -1 }), "invalid_json"),
        (json!({ "name": "ok", "scope": "admin" }), "invalid_json"),
    ];
    for (body, code) in cases {
        assert_eq!(error_code(app.post(&client, "/api/tokens", &body).await).await, (400, code.to_string()), "{body}");
    }
    let res = client.delete(app.url("/api/tokens/not-a-uuid")).header("Origin", &app.origin).send().await.unwrap();
    assert_eq!(error_code(res).await, (404, "not_found".into()));
    assert_eq!(app.count("api_tokens").await, 0);
}

#[tokio::test]
async fn failed_token_checks_are_rate_limited_per_ip_and_valid_tokens_still_work() {
    let app = TestApp::spawn_with(&["--auth-rate-per-ip", "3"]).await;
    let (client, _) = app.signed_up_user("limit@example.com").await;
    let token = app.create_token(&client, "real").await;
    let api = reqwest::Client::new();
    let forged = format!("rst_{}", "B".repeat(43));
    for _ in 0..3 {
        assert_eq!(api.get(app.url("/api/me")).bearer_auth(&forged).send().await.unwrap().status(), 401);
    }
    let res = api.get(app.url("/api/me")).bearer_auth(&forged).send().await.unwrap();
    assert_eq!(error_code(res).await, (429, "rate_limited".into()));
    let res = api.get(app.url("/api/me")).bearer_auth(token["token"].as_str().unwrap()).send().await.unwrap();
    assert_eq!(res.status(), 200);
}

#[tokio::test]
async fn the_token_limit_holds_when_creates_race() {
    let app = TestApp::spawn().await;
    let (cookie, user_id) = app.signed_up_cookie("tokenrace@example.com").await;
    for i in 0..49 {
        app.sql(&format!(
            "INSERT INTO api_tokens (id, user_id, name, prefix, token_hash, created_at) \
             VALUES ('t{i}', '{user_id}', 'n', 'rst_x', 'h{i}', 0)"
        ))
        .await;
    }
    let body = serde_json::json!({ "name": "one more" });
    let creates = (0..8).map(|_| app.send_as(&cookie, reqwest::Method::POST, "/api/tokens", Some(&body)));
    let statuses: Vec<u16> =
        futures_util::future::join_all(creates).await.iter().map(|r| r.status().as_u16()).collect();
    assert_eq!(statuses.iter().filter(|s| **s == 201).count(), 1, "{statuses:?}");
    assert!(statuses.iter().all(|s| matches!(s, 201 | 409)), "{statuses:?}");
    assert_eq!(app.count("api_tokens").await, 50);
}
