use serde_json::{Value, json};

use crate::helpers::{TestApp, error_code};

#[tokio::test]
async fn sessions_can_be_created_renamed_listed_and_deleted() {
    let app = TestApp::spawn().await;
    let (client, _) = app.signed_up_user("sess@example.com").await;
    let list: Value = app.get(&client, "/api/sessions").await.json().await.unwrap();
    assert_eq!(list["sessions"][0]["key"], "main", "everyone has a main chat");
    let res = app.post(&client, "/api/sessions", &json!({ "title": "Trip plans" })).await;
    assert_eq!(res.status(), 201);
    let created: Value = res.json().await.unwrap();
    let key = created["key"].as_str().unwrap().to_string();
    let res = client
        .patch(app.url(&format!("/api/sessions/{key}")))
        .header("Origin", &app.origin)
        .json(&json!({ "title": "Holiday" }))
        .send()
        .await
        .unwrap();
    assert_eq!(res.json::<Value>().await.unwrap()["title"], "Holiday");
    let list: Value = app.get(&client, "/api/sessions").await.json().await.unwrap();
    assert_eq!(list["sessions"].as_array().unwrap().len(), 2);
    let res =
        client.delete(app.url(&format!("/api/sessions/{key}"))).header("Origin", &app.origin).send().await.unwrap();
    assert_eq!(res.status(), 204);
    let list: Value = app.get(&client, "/api/sessions").await.json().await.unwrap();
    assert_eq!(list["sessions"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn bad_session_input_is_refused_and_nothing_is_written() {
    let app = TestApp::spawn().await;
    let (client, _) = app.signed_up_user("badsess@example.com").await;
    app.get(&client, "/api/sessions").await;
    assert_eq!(
        error_code(app.post(&client, "/api/sessions", &json!({ "title": "" })).await).await,
        (400, "invalid_title".into())
    );
    assert_eq!(
        error_code(app.post(&client, "/api/sessions", &json!({ "key": "mine" })).await).await,
        (400, "invalid_json".into())
    );
    let res = client
        .patch(app.url("/api/sessions/nope"))
        .header("Origin", &app.origin)
        .json(&json!({ "title": "x" }))
        .send()
        .await
        .unwrap();
    assert_eq!(error_code(res).await.0, 404);
    assert_eq!(error_code(app.get(&client, "/api/sessions/..%2F..%2Fetc/history").await).await.0, 404);
    assert_eq!(
        error_code(app.get(&client, "/api/sessions/main/history?limit=500").await).await,
        (400, "invalid_limit".into())
    );
    assert_eq!(
        error_code(app.get(&client, "/api/sessions/main/history?limit=abc").await).await,
        (400, "invalid_query".into())
    );
    assert_eq!(app.count("chat_sessions").await, 0, "listing chats writes nothing");
}

#[tokio::test]
async fn history_is_served_from_the_cache_as_stale_while_the_agent_sleeps() {
    let app = TestApp::spawn().await;
    let (cookie, user_id) = app.signed_up_cookie("hist@example.com").await;
    let mut ws = app.ws(&cookie, "").await;
    ws.ready().await;
    let reply = ws.chat("main", "remember me").await;
    drop(ws);
    wait_for_cached(&app, &user_id, 2).await;
    let fresh: Value = app.json_as(&cookie, "/api/sessions/main/history").await;
    assert_eq!(fresh["stale"], false);
    assert_eq!(fresh["messages"][0]["text"], "remember me");
    assert_eq!(fresh["messages"][1]["text"], reply.as_str());

    // The agent goes to sleep: the page still shows the conversation at once.
    app.state.machines.stop(&gateway::domain::UserId::parse(&user_id).unwrap()).await.unwrap();
    let cached: Value = app.json_as(&cookie, "/api/sessions/main/history").await;
    assert_eq!(cached["stale"], true);
    assert_eq!(cached["messages"], fresh["messages"]);
}

/// A reply's tool calls come back with it, fresh from the agent and from the cache while it sleeps.
#[tokio::test]
async fn a_replys_tool_calls_are_in_its_history_fresh_and_cached() {
    let app = TestApp::spawn().await;
    let (cookie, user_id) = app.signed_up_cookie("tools-hist@example.com").await;
    let mut ws = app.ws(&cookie, "").await;
    ws.ready().await;
    let reply = ws.chat("main", "/tool ls -la").await;
    ws.chat("main", "/tool fail now").await;
    drop(ws);
    wait_for_cached(&app, &user_id, 4).await;
    let fresh: Value = app.json_as(&cookie, "/api/sessions/main/history").await;
    let messages = fresh["messages"].as_array().unwrap();
    assert_eq!(messages.len(), 4, "one reply per run, the calls inside it: {messages:?}");
    assert!(messages[0].get("tools").is_none(), "a user message has no tools");
    assert_eq!(messages[1]["text"], reply.as_str());
    let tool = &messages[1]["tools"][0];
    assert_eq!((tool["name"].as_str(), tool["status"].as_str()), (Some("exec"), Some("done")));
    assert_eq!(tool["args"], json!({ "command": "ls -la" }));
    assert!(tool["result"].as_str().unwrap().contains("simulated output of `ls -la`"), "{tool}");
    assert_eq!(messages[3]["tools"][0]["status"], "error");

    app.state.machines.stop(&gateway::domain::UserId::parse(&user_id).unwrap()).await.unwrap();
    let cached: Value = app.json_as(&cookie, "/api/sessions/main/history").await;
    assert_eq!(cached["stale"], true);
    assert_eq!(cached["messages"], fresh["messages"], "the cache keeps the cards too");
}

/// The cache is written after the answer, off the request path: wait for it.
async fn wait_for_cached(app: &TestApp, user_id: &str, at_least: i64) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let rows = app.sql(&format!("SELECT count(*) FROM chat_messages WHERE user_id = '{user_id}'")).await;
        if matches!(rows[0], libsql::Value::Integer(n) if n >= at_least) {
            return;
        }
        assert!(std::time::Instant::now() < deadline, "the history cache was written");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn the_chat_limit_holds_when_creates_race() {
    let app = TestApp::spawn().await;
    let (cookie, user_id) = app.signed_up_cookie("race@example.com").await;
    for i in 0..199 {
        app.sql(&format!(
            "INSERT INTO chat_sessions (user_id, key, title, created_at, updated_at) VALUES ('{user_id}', 's-{i}', 't', 0, 0)"
        ))
        .await;
    }
    let body = json!({ "title": "one more" });
    let creates = (0..12).map(|_| app.send_as(&cookie, reqwest::Method::POST, "/api/sessions", Some(&body)));
    let statuses: Vec<u16> =
        futures_util::future::join_all(creates).await.iter().map(|r| r.status().as_u16()).collect();
    assert_eq!(statuses.iter().filter(|s| **s == 201).count(), 1, "{statuses:?}");
    assert!(statuses.iter().all(|s| matches!(s, 201 | 409)), "{statuses:?}");
    assert_eq!(app.count("chat_sessions").await, 200);
}

#[tokio::test]
async fn huge_messages_are_cached_cut_short_and_the_cache_has_a_budget() {
    let app = TestApp::spawn().await;
    let (cookie, user_id) = app.signed_up_cookie("huge@example.com").await;
    let mut ws = app.ws(&cookie, "").await;
    ws.ready().await;
    for i in 0..3 {
        ws.chat("main", &format!("{i}{}", "y".repeat(1 << 20))).await;
    }
    drop(ws);
    wait_for_cached(&app, &user_id, 6).await;
    let bytes = app.sql(&format!("SELECT sum(length(text)) FROM chat_messages WHERE user_id = '{user_id}'")).await;
    let libsql::Value::Integer(bytes) = bytes[0] else { panic!("{bytes:?}") };
    assert!(bytes < 3 * 33 * 1024 + 4096, "3 MB of messages cached as {bytes} bytes");
    let history: Value = app.json_as(&cookie, "/api/sessions/main/history").await;
    let first = history["messages"][0]["text"].as_str().unwrap();
    assert!(first.starts_with('0') && first.ends_with("your agent keeps the whole message)"), "{}", &first[..40]);
}

#[tokio::test]
async fn a_chat_send_to_a_new_chat_is_held_to_the_same_limit() {
    let app = TestApp::spawn().await;
    let (cookie, user_id) = app.signed_up_cookie("sendcap@example.com").await;
    let mut ws = app.ws(&cookie, "").await;
    ws.ready().await;
    // Below the limit, a message to a new chat creates and lists it.
    ws.chat("s-fresh", "hi").await;
    let list: Value = app.json_as(&cookie, "/api/sessions").await;
    assert!(list["sessions"].as_array().unwrap().iter().any(|s| s["key"] == "s-fresh"), "{list}");
    for i in 1..200 {
        app.sql(&format!(
            "INSERT INTO chat_sessions (user_id, key, title, created_at, updated_at) VALUES ('{user_id}', 's-{i}', 't', 0, 0)"
        ))
        .await;
    }
    ws.request("over", "chat.send", json!({ "sessionKey": "s-one-too-many", "message": "x", "idempotencyKey": "k1" }))
        .await;
    let refused = ws.until("the refusal", |f| f["type"] == "res" && f["id"] == "over").await;
    assert_eq!(refused["ok"], false, "{refused}");
    assert_eq!(refused["error"]["code"], "too_many_sessions");
    assert_eq!(app.count("chat_sessions").await, 200);
    // Existing chats and the main chat still work.
    assert!(!ws.chat("s-7", "still here").await.is_empty());
    assert!(!ws.chat("main", "and here").await.is_empty());
    assert_eq!(app.count("chat_sessions").await, 200);
}
