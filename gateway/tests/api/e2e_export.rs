//! Backups against the real OpenClaw (local provider): chat → export → delete the machine →
//! provision → import → the history and a workspace file are back, and the archive holds none of
//! the platform's secrets.

use std::io::Read;

use gateway::domain::UserId;
use serde_json::Value;

use crate::e2e_openclaw::{READY_WAIT, agent_slot, available, shared};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn e2e_a_real_agents_backup_survives_deleting_its_machine() {
    if !available() {
        return;
    }
    let _slot = agent_slot("e2e_a_real_agents_backup_survives_deleting_its_machine").await;
    let server = tokio::task::spawn_blocking(shared).await.unwrap();
    let app = &server.app;
    let (cookie, user_id) = app.signed_up_cookie("e2e-backup@example.com").await;
    let mut ws = app.ws(&cookie, "").await;
    ws.wait = READY_WAIT;
    tokio::time::timeout(READY_WAIT, ws.until_event("roost.ready")).await.expect("ready in time");
    ws.chat("main", "remember the green kite").await;
    drop(ws);
    let workspace = app.dir.path().join("users").join(&user_id).join("state/workspace");
    std::fs::create_dir_all(&workspace).unwrap();
    std::fs::write(workspace.join("kite.md"), "green, 2 m").unwrap();

    let res = reqwest::Client::new().get(app.url("/api/export")).header("cookie", &cookie).send().await.unwrap();
    assert_eq!(res.status(), 200);
    let archive = res.bytes().await.unwrap().to_vec();
    let mut plain = Vec::new();
    flate2::read::GzDecoder::new(archive.as_slice()).read_to_end(&mut plain).unwrap();
    let user = UserId::parse(&user_id).unwrap();
    let gateway_token = gateway::agent_credentials::gateway_token(&app.state.secret, &user);
    let llm_credential = gateway::agent_credentials::llm_credential(&app.state.secret, &user);
    for secret in [gateway_token.as_str(), llm_credential.as_str(), "sk-operator"] {
        assert!(!crate::helpers::contains(&plain, secret), "a platform secret is in the backup");
    }
    assert!(crate::helpers::contains(&plain, "remember the green kite"), "the transcript is in it");

    let state = app.state.clone();
    let destroy_user = user.clone();
    server.on_server(async move { state.machines.destroy(&destroy_user).await.unwrap() });
    assert!(!workspace.join("kite.md").exists(), "the machine and its files are gone");
    let state = app.state.clone();
    let start_user = user.clone();
    server.on_server(async move { state.machines.ensure_ready(&start_user).await.unwrap() });

    let res = reqwest::Client::new()
        .post(app.url("/api/import?confirm=replace"))
        .header("Origin", &app.origin)
        .header("cookie", &cookie)
        .body(archive)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200, "{:?}", res.text().await);
    assert_eq!(std::fs::read_to_string(workspace.join("kite.md")).unwrap(), "green, 2 m");
    let deadline = std::time::Instant::now() + READY_WAIT;
    loop {
        let history: Value = app.json_as(&cookie, "/api/sessions/main/history").await;
        if history["stale"] == false
            && history["messages"].as_array().is_some_and(|m| m.iter().any(|m| m["text"] == "remember the green kite"))
        {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "the history came back: {history}");
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    }
}
