//! Sockets close (4401) when the credential that opened them ends, however it ends.

use fakes::openclaw::{FakeOpenClaw, FakeOpenClawOptions};
use futures_util::{SinkExt, StreamExt};
use serde_json::json;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

use crate::helpers::{PASSWORD, TestApp, wait_until};
use crate::ws::{Client, WAIT};

const RECHECK_FAST: [&str; 2] = ["--credential-recheck-secs", "1"];

#[tokio::test]
async fn a_socket_stuck_behind_a_stalled_agent_still_gets_its_logout() {
    let agent = FakeOpenClaw::spawn(FakeOpenClawOptions { any_token: true, ..FakeOpenClawOptions::default() }).await;
    let app = TestApp::spawn_with(&["--fake-agent-url", &agent.ws_url()]).await;
    let (cookie, _) = app.signed_up_cookie("busy@example.com").await;
    let mut request = format!("ws://{}/ws", app.addr).into_client_request().unwrap();
    request.headers_mut().insert("cookie", cookie.parse().unwrap());
    request.headers_mut().insert("origin", app.origin.parse().unwrap());
    let (socket, _) = tokio_tungstenite::connect_async(request).await.unwrap();
    let (mut to_server, mut from_server) = socket.split();
    while let Some(Ok(message)) = from_server.next().await {
        if message.to_text().is_ok_and(|t| t.contains("roost.ready")) {
            break;
        }
    }
    agent.stall_all();
    // Requests pile up behind the hung agent until the socket's link to it is full.
    let sent = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = sent.clone();
    let flood = tokio::spawn(async move {
        let message = "x".repeat(256 * 1024);
        for n in 0.. {
            let frame = json!({ "type": "req", "id": format!("f{n}"), "method": "chat.send",
                "params": { "sessionKey": "main", "message": message, "idempotencyKey": format!("f{n}") } });
            if to_server.send(Message::text(frame.to_string())).await.is_err() {
                return;
            }
            counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
    });
    wait_until("the agent link is backed up", || async { sent.load(std::sync::atomic::Ordering::Relaxed) > 64 }).await;

    let res = app.send_as(&cookie, reqwest::Method::POST, "/api/auth/logout", None).await;
    assert_eq!(res.status(), 204);
    // More revocations than the old shared channel held, all after the logout.
    let (other, _) = app.signed_up_user("others@example.com").await;
    for n in 0..70 {
        let token = app.create_token(&other, &format!("t{n}")).await;
        let id = token["id"].as_str().unwrap();
        let res =
            other.delete(app.url(&format!("/api/tokens/{id}"))).header("Origin", &app.origin).send().await.unwrap();
        assert_eq!(res.status(), 204);
    }
    let close = tokio::time::timeout(WAIT, async {
        while let Some(Ok(message)) = from_server.next().await {
            if let Message::Close(frame) = message {
                return frame.map(|f| (u16::from(f.code), f.reason.to_string()));
            }
        }
        None
    })
    .await
    .expect("the socket closes within the wait");
    assert_eq!(close, Some((4401, "signed out".to_string())));
    flood.abort();
}

#[tokio::test]
async fn sockets_of_expired_sessions_close() {
    let app = TestApp::spawn_with(&RECHECK_FAST).await;
    let (absolute, _) = app.signed_up_cookie("expire@example.com").await;
    let res = app
        .post(&app.browser(), "/api/auth/login", &json!({ "email": "expire@example.com", "password": PASSWORD }))
        .await;
    let idle = res.headers()["set-cookie"].to_str().unwrap().split(';').next().unwrap().to_string();
    let mut absolute_ws = app.ws(&absolute, "").await;
    absolute_ws.ready().await;
    let mut idle_ws = app.ws(&idle, "").await;
    idle_ws.ready().await;
    let hash = |cookie: &str| gateway::crypto::sha256_hex(cookie.split_once('=').unwrap().1.as_bytes());
    let conn = app.state.db.conn().unwrap();
    conn.execute("UPDATE sessions SET expires_at = 1 WHERE token_hash = ?1", [hash(&absolute)]).await.unwrap();
    assert_eq!(absolute_ws.closed().await.0, 4401, "past its absolute expiry");
    assert!(idle_ws.chat("main", "still here?").await.starts_with("Hello"), "the other session is untouched");
    conn.execute("UPDATE sessions SET last_seen_at = 1 WHERE token_hash = ?1", [hash(&idle)]).await.unwrap();
    assert_eq!(idle_ws.closed().await.0, 4401, "idle past the idle timeout");
}

#[tokio::test]
async fn admin_commands_from_another_process_close_the_sockets() {
    let app = TestApp::spawn_with(&RECHECK_FAST).await;
    let (cookie, _) = app.signed_up_cookie("admin-revoke@example.com").await;
    let mut by_cookie = app.ws(&cookie, "").await;
    by_cookie.ready().await;
    let (client, _) = app.signed_up_user("admin-delete@example.com").await;
    let token = app.create_token(&client, "bot").await;
    let bearer = format!("Bearer {}", token["token"].as_str().unwrap());
    let mut by_token = Client::connect(&format!("ws://{}/ws", app.addr), &[("authorization", &bearer)]).await.unwrap();
    by_token.ready().await;

    admin(&app, &["revoke-sessions", "admin-revoke@example.com"]).await;
    assert_eq!(by_cookie.closed().await.0, 4401);
    admin(&app, &["delete-user", "admin-delete@example.com"]).await;
    assert_eq!(by_token.closed().await.0, 4401);

    let audit = app.sql("SELECT actor || ' ' || action || ' ' || detail FROM admin_audit ORDER BY id").await;
    let audit: Vec<String> = audit.into_iter().map(|v| format!("{v:?}")).collect();
    assert_eq!(audit.len(), 2, "each task leaves one audit row: {audit:?}");
    assert!(audit[0].contains("cli user.revoke_sessions ended 1 sessions, revoked 0 API tokens"), "{audit:?}");
    assert!(audit[1].contains("cli user.delete"), "the deletion is recorded after the account is gone: {audit:?}");
}

/// Runs `roost admin <task…>` in its own process against the app's data; returns what it printed.
pub async fn admin(app: &TestApp, task: &[&str]) -> String {
    let output = admin_output(app, task).await;
    assert!(output.status.success(), "roost admin {task:?}: {}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8(output.stdout).unwrap()
}

/// The same, succeeding or not.
pub async fn admin_output(app: &TestApp, task: &[&str]) -> std::process::Output {
    let data_dir = app.dir.path().to_str().unwrap();
    tokio::process::Command::new(env!("CARGO_BIN_EXE_roost"))
        .args(["admin", "--data-dir", data_dir])
        .args(task)
        .output()
        .await
        .expect("roost admin runs")
}
