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
    assert_eq!(app.count("chat_sessions").await, 1);
}

#[tokio::test]
async fn history_is_served_from_the_cache_as_stale_while_the_agent_sleeps() {
    let app = TestApp::spawn().await;
    let (cookie, user_id) = app.signed_up_cookie("hist@example.com").await;
    let mut ws = app.ws(&cookie, "").await;
    ws.ready().await;
    let reply = ws.chat("main", "remember me").await;
    drop(ws);
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
