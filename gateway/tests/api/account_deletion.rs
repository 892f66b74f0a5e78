//! Deleting an account destroys its agent and data, from every path: `DELETE /api/me`,
//! `roost admin delete-user` in another process, and Clerk's `user.deleted`.

use gateway::domain::UserId;
use serde_json::{Value, json};

use crate::helpers::{PASSWORD, TestApp, error_code, wait_until};

const RECHECK_FAST: [&str; 2] = ["--credential-recheck-secs", "1"];

fn user(id: &str) -> UserId {
    UserId::parse(id).unwrap()
}

/// Rows of `table` that belong to the user.
pub async fn rows_of(app: &TestApp, table: &str, user_id: &str) -> i64 {
    match app.sql(&format!("SELECT count(*) FROM {table} WHERE user_id = '{user_id}'")).await[0] {
        libsql::Value::Integer(n) => n,
        ref other => panic!("count returned {other:?}"),
    }
}

const OWNED: [&str; 6] = ["sessions", "api_tokens", "chat_sessions", "chat_messages", "machines", "machine_events"];

/// A user with a running agent, a chat with cached messages, an API token and a metered call.
async fn busy_user(app: &TestApp, email: &str) -> (String, String, crate::ws::Client) {
    let (cookie, id) = app.signed_up_cookie(email).await;
    let mut ws = app.ws(&cookie, "").await;
    ws.ready().await;
    assert!(ws.chat("main", "remember me").await.starts_with("Hello"));
    let res = app.send_as(&cookie, reqwest::Method::POST, "/api/tokens", Some(&json!({ "name": "bot" }))).await;
    assert_eq!(res.status(), 201);
    let res = app.send_as(&cookie, reqwest::Method::POST, "/api/sessions", Some(&json!({ "title": "notes" }))).await;
    assert!(res.status().is_success(), "a chat is created");
    let conn = app.state.db.conn().unwrap();
    conn.execute(
        "INSERT OR IGNORE INTO chat_messages (user_id, session_key, position, role, text, ts) VALUES (?1, 'main', 0, 'user', 'hi', 1)",
        [id.as_str()],
    )
    .await
    .unwrap();
    conn.execute(
        "INSERT INTO usage_events (user_id, idempotency_key, api, model, upstream_status, complete, created_at)
         VALUES (?1, ?2, 'openai', 'm', 200, 1, 1)",
        (id.as_str(), format!("usage-{id}")),
    )
    .await
    .unwrap();
    // The lifecycle history is written off the reporting path.
    wait_until("the agent's start is in its history", || async { rows_of(app, "machine_events", &id).await > 0 }).await;
    for table in OWNED {
        assert!(rows_of(app, table, &id).await > 0, "{email} has {table} rows");
    }
    (cookie, id, ws)
}

async fn delete_me(app: &TestApp, cookie: &str, body: Option<Value>) -> reqwest::Response {
    app.send_as(cookie, reqwest::Method::DELETE, "/api/me", body.as_ref()).await
}

async fn agent_gone(app: &TestApp, id: &str) -> bool {
    let simulated = app.state.machines.simulated().unwrap();
    app.state.machines.address_if_ready(&user(id)).await.is_none()
        && !simulated.keeps_state_for(id).await
        && rows_of(app, "machines", id).await == 0
}

async fn assert_untouched(app: &TestApp, id: &str, ws: &mut crate::ws::Client) {
    for table in OWNED {
        assert!(rows_of(app, table, id).await > 0, "the other user's {table} rows are untouched");
    }
    assert!(app.state.machines.simulated().unwrap().keeps_state_for(id).await, "the other agent keeps its state");
    assert!(ws.chat("main", "still there?").await.starts_with("Hello"), "the other agent still answers");
}

#[tokio::test]
async fn a_wrong_password_deletes_nothing_and_the_right_one_deletes_the_account_and_its_agent() {
    let app = TestApp::spawn().await;
    let (cookie, id, mut ws) = busy_user(&app, "leaving@example.com").await;
    let (_, other, mut other_ws) = busy_user(&app, "staying@example.com").await;

    let refused = [
        (delete_me(&app, &cookie, Some(json!({ "password": "not my password" }))).await, 403, "wrong_password"),
        (delete_me(&app, &cookie, None).await, 400, "password_required"),
        (delete_me(&app, &cookie, Some(json!({ "password": PASSWORD, "also": 1 }))).await, 400, "invalid_body"),
    ];
    for (res, status, code) in refused {
        assert_eq!(error_code(res).await, (status, code.to_string()));
    }
    for table in OWNED {
        assert!(rows_of(&app, table, &id).await > 0, "a refused deletion deleted no {table} row");
    }
    assert!(app.state.machines.address_if_ready(&user(&id)).await.is_some(), "the agent still runs");

    let res = delete_me(&app, &cookie, Some(json!({ "password": PASSWORD }))).await;
    assert_eq!(res.status(), 204);
    let cleared = res.headers()["set-cookie"].to_str().unwrap();
    assert!(cleared.starts_with("roost_session=;") && cleared.contains("Max-Age=0"), "cookie cleared: {cleared}");
    assert_eq!(ws.closed().await.0, 4401, "the user's socket is closed");
    assert_eq!(app.get(&reqwest::Client::new(), "/api/me").await.status(), 401);
    assert_eq!(app.json_as(&cookie, "/api/me").await["error"]["code"], "session_expired", "the old session is gone");
    for table in OWNED {
        assert_eq!(rows_of(&app, table, &id).await, 0, "no {table} rows are left");
    }
    assert!(agent_gone(&app, &id).await, "the agent and its state are destroyed");
    assert_eq!(rows_of(&app, "usage_events", &id).await, 1, "metered usage stays for accounting");
    let email = app.sql(&format!("SELECT count(*) FROM users WHERE id = '{id}' AND email IS NULL")).await;
    assert_eq!(email[0], libsql::Value::Integer(1), "the tombstone keeps no email");
    let again = app.signup(&reqwest::Client::new(), "leaving@example.com").await;
    assert_eq!(again.status(), 201, "the email is free again");

    assert_untouched(&app, &other, &mut other_ws).await;
}

#[tokio::test]
async fn an_api_token_cannot_delete_the_account() {
    let app = TestApp::spawn().await;
    let (client, id) = app.signed_up_user("token-holder@example.com").await;
    let token = app.create_token(&client, "leaked").await;
    let res = reqwest::Client::new()
        .delete(app.url("/api/me"))
        .bearer_auth(token["token"].as_str().unwrap())
        .json(&json!({ "password": PASSWORD }))
        .send()
        .await
        .unwrap();
    assert_eq!(error_code(res).await, (403, "session_required".to_string()));
    assert_eq!(rows_of(&app, "api_tokens", &id).await, 1);
    assert_eq!(app.get(&client, "/api/me").await.status(), 200, "the account is still there");
}

#[tokio::test]
async fn admin_delete_user_from_another_process_destroys_the_running_servers_agent() {
    let app = TestApp::spawn_with(&RECHECK_FAST).await;
    let (_, id, mut ws) = busy_user(&app, "admin-deleted@example.com").await;
    let (_, other, mut other_ws) = busy_user(&app, "admin-kept@example.com").await;

    crate::revocations::admin(&app, &["delete-user", "admin-deleted@example.com"]).await;
    assert_eq!(ws.closed().await.0, 4401);
    wait_until("the deleted user's agent is destroyed", || agent_gone(&app, &id)).await;
    for table in OWNED {
        assert_eq!(rows_of(&app, table, &id).await, 0, "no {table} rows are left");
    }
    assert_untouched(&app, &other, &mut other_ws).await;
}

#[tokio::test]
async fn a_clerk_user_deletes_their_account_without_a_password() {
    let app = crate::clerk::clerk_app(&[]).await;
    let token = crate::clerk::sign(&crate::clerk::claims(&app, "user_self_delete", "sess_s"));
    let bearer = format!("Bearer {token}");
    let mut ws =
        crate::ws::Client::connect(&format!("ws://{}/ws", app.addr), &[("authorization", &bearer)]).await.unwrap();
    ws.ready().await;
    let id = app.json_bearer(&token, "/api/me").await["id"].as_str().unwrap().to_string();
    let delete = |body: Option<Value>| {
        let request = reqwest::Client::new().delete(app.url("/api/me")).bearer_auth(&token);
        let request = match body {
            Some(body) => request.json(&body),
            None => request,
        };
        async move { request.send().await.unwrap() }
    };
    let res = delete(Some(json!({ "password": "anything" }))).await;
    assert_eq!(error_code(res).await, (400, "no_password".to_string()));
    assert_eq!(delete(Some(json!({}))).await.status(), 204);
    assert_eq!(ws.closed().await.0, 4401);
    assert!(agent_gone(&app, &id).await, "the agent and its state are destroyed");
    let res = reqwest::Client::new().get(app.url("/api/me")).bearer_auth(&token).send().await.unwrap();
    assert_eq!(res.status(), 401, "the Clerk token no longer opens the deleted account");
}

fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/status")).is_ok_and(|s| !s.contains("State:\tZ"))
}

/// The `local` provider with a stand-in OpenClaw (the provisioner's test one), started through
/// a helper that execs it unconfined: cheap enough for a gateway test.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_an_account_removes_the_local_agents_process_and_state_dir() {
    if std::process::Command::new("node").arg("--version").output().is_err() {
        assert!(std::env::var("CI").map_or(true, |v| v != "true"), "node is required in CI");
        eprintln!("SKIPPED: node is not installed");
        return;
    }
    let tests = concat!(env!("CARGO_MANIFEST_DIR"), "/../provisioner/tests/local");
    let (stand_in, helper) = (format!("{tests}/stand_in_openclaw.mjs"), format!("{tests}/exec_as_is.sh"));
    let app = TestApp::spawn_with(&[
        "--agent-provider",
        "local",
        "--openclaw-bin",
        &stand_in,
        "--node-bin",
        "node",
        "--agent-exec-bin",
        &helper,
        "--assume-landlock-abi",
        "0",
        "--unsandboxed-agents",
        "--no-prewarm",
    ])
    .await;
    let mut agents = Vec::new();
    for email in ["local-leaving@example.com", "local-staying@example.com"] {
        let (cookie, id) = app.signed_up_cookie(email).await;
        app.state.machines.ensure_ready(&user(&id)).await.expect("the stand-in agent starts");
        let pid = match &app.sql(&format!("SELECT external_id FROM machines WHERE user_id = '{id}'")).await[0] {
            libsql::Value::Text(pid) => pid.parse::<u32>().unwrap(),
            other => panic!("no agent pid: {other:?}"),
        };
        let dir = app.dir.path().join("users").join(&id);
        assert!(alive(pid) && dir.join("state/openclaw.json").exists(), "{email}'s agent runs with its state");
        agents.push((cookie, pid, dir));
    }
    let [(cookie, pid, dir), (_, other_pid, other_dir)] = <[_; 2]>::try_from(agents).unwrap();

    let res = delete_me(&app, &cookie, Some(json!({ "password": PASSWORD }))).await;
    assert_eq!(res.status(), 204);
    assert!(!alive(pid), "the agent's process is gone");
    assert!(!dir.exists(), "its state dir is gone");
    assert!(alive(other_pid), "another user's agent still runs");
    assert!(other_dir.join("state/openclaw.json").exists(), "another user's state dir is untouched");
}
