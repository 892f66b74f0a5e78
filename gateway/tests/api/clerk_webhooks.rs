use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Value, json};

use crate::clerk::{claims, clerk_app, sign};
use crate::helpers::{TestApp, error_code};

const SECRET: &str = "whsec_AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";

fn now() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64
}

fn signature(id: &str, ts: i64, body: &str) -> String {
    let key = STANDARD.decode(SECRET.trim_start_matches("whsec_")).unwrap();
    let tag = gateway::crypto::hmac_sha256(&key, format!("{id}.{ts}.{body}").as_bytes());
    format!("v1,{}", STANDARD.encode(tag))
}

async fn deliver(app: &TestApp, id: &str, ts: i64, body: &str, sig: &str) -> reqwest::Response {
    reqwest::Client::new()
        .post(app.url("/webhooks/clerk"))
        .header("svix-id", id)
        .header("svix-timestamp", ts.to_string())
        .header("svix-signature", sig)
        .header("content-type", "application/json")
        .body(body.to_string())
        .send()
        .await
        .unwrap()
}

async fn deliver_signed(app: &TestApp, id: &str, body: &Value) -> reqwest::Response {
    let body = body.to_string();
    let ts = now();
    deliver(app, id, ts, &body, &signature(id, ts, &body)).await
}

#[tokio::test]
async fn user_deleted_locks_the_user_out_and_replays_are_ignored() {
    let app = clerk_app(&["--clerk-webhook-secret", SECRET]).await;
    let token = sign(&claims(&app, "user_gone", "sess_9"));
    let api = reqwest::Client::new();
    assert_eq!(api.get(app.url("/api/me")).bearer_auth(&token).send().await.unwrap().status(), 200);

    let event = json!({ "type": "user.deleted", "object": "event", "data": { "id": "user_gone", "deleted": true, "object": "user" } });
    let res: Value = deliver_signed(&app, "msg_1", &event).await.json().await.unwrap();
    assert_eq!(res["duplicate"], false);
    assert_eq!(api.get(app.url("/api/me")).bearer_auth(&token).send().await.unwrap().status(), 401);

    let again: Value = deliver_signed(&app, "msg_1", &event).await.json().await.unwrap();
    assert_eq!(again["duplicate"], true, "a retried delivery is recognised");
    assert_eq!(app.count("webhook_events").await, 1);
}

#[tokio::test]
async fn session_revoked_refuses_that_session_only() {
    let app = clerk_app(&["--clerk-webhook-secret", SECRET]).await;
    let revoked = sign(&claims(&app, "user_two", "sess_revoked"));
    let other = sign(&claims(&app, "user_two", "sess_other"));
    let event =
        json!({ "type": "session.revoked", "object": "event", "data": { "id": "sess_revoked", "object": "session" } });
    assert_eq!(deliver_signed(&app, "msg_2", &event).await.status(), 200);
    let api = reqwest::Client::new();
    assert_eq!(api.get(app.url("/api/me")).bearer_auth(&revoked).send().await.unwrap().status(), 401);
    assert_eq!(api.get(app.url("/api/me")).bearer_auth(&other).send().await.unwrap().status(), 200);
}

#[tokio::test]
async fn bad_signatures_stale_timestamps_and_junk_are_refused_and_not_recorded() {
    let app = clerk_app(&["--clerk-webhook-secret", SECRET]).await;
    let body = json!({ "type": "user.deleted", "data": { "id": "user_x" } }).to_string();
    let ts = now();
    let good_sig = signature("msg_3", ts, &body);
    let cases = [
        deliver(&app, "msg_3", ts, &body, "v1,AAAA").await,
        deliver(&app, "msg_3", ts, &format!("{body}\n"), &good_sig).await,
        deliver(&app, "msg_3", ts - 600, &body, &signature("msg_3", ts - 600, &body)).await,
        deliver(&app, "msg_other", ts, &body, &good_sig).await,
        deliver(&app, "msg_4", ts, "not json", &signature("msg_4", ts, "not json")).await,
    ];
    for res in cases {
        assert_eq!(error_code(res).await.0, 400);
    }
    let unsigned = reqwest::Client::new().post(app.url("/webhooks/clerk")).body(body.clone()).send().await.unwrap();
    assert_eq!(error_code(unsigned).await, (400, "missing_signature".into()));
    assert_eq!(app.count("webhook_events").await, 0);
}

#[tokio::test]
async fn clerk_webhooks_are_off_without_a_secret() {
    let app = TestApp::spawn().await;
    let res = reqwest::Client::new().post(app.url("/webhooks/clerk")).body("{}").send().await.unwrap();
    assert_eq!(error_code(res).await.0, 404);
}

#[tokio::test]
async fn a_deleted_clerk_user_is_disconnected_and_their_agent_destroyed() {
    let app = clerk_app(&["--clerk-webhook-secret", SECRET]).await;
    let token = sign(&claims(&app, "user_leaving", "sess_l"));
    let bearer = format!("Bearer {token}");
    let mut ws =
        crate::ws::Client::connect(&format!("ws://{}/ws", app.addr), &[("authorization", &bearer)]).await.unwrap();
    ws.ready().await;
    let me = app.json_bearer(&token, "/api/me").await;
    let user = gateway::domain::UserId::parse(me["id"].as_str().unwrap()).unwrap();
    assert!(app.state.machines.address_if_ready(&user).await.is_some());

    let event = json!({ "type": "user.deleted", "object": "event", "data": { "id": "user_leaving", "deleted": true } });
    assert_eq!(deliver_signed(&app, "msg_leave", &event).await.status(), 200);
    assert_eq!(ws.closed().await.0, 4401);
    assert!(app.state.machines.address_if_ready(&user).await.is_none(), "their agent was stopped");
    let simulated = app.state.machines.simulated().unwrap();
    assert!(!simulated.keeps_state_for(user.as_str()).await, "and its state deleted");
    assert_eq!(crate::account_deletion::rows_of(&app, "machines", user.as_str()).await, 0, "and its row");
}
