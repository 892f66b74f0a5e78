//! What keeps every tab honest: a user's own message reaches their other tabs (and survives a
//! resume), the page hears a heartbeat it can watch, and a failed run stays marked in history.

use gateway::machines::simulated::Reply;
use serde_json::{Value, json};

use crate::helpers::{TestApp, wait_until};
use crate::ws::Client;

fn events<'a>(ws: &'a Client, name: &'a str) -> impl Iterator<Item = Value> + 'a {
    ws.received.iter().filter_map(|t| serde_json::from_str::<Value>(t).ok()).filter(move |f| f["event"] == name)
}

fn last_seq(ws: &Client) -> u64 {
    ws.received.iter().filter_map(|t| serde_json::from_str::<Value>(t).ok()?["roostSeq"].as_u64()).max().unwrap_or(0)
}

#[tokio::test]
async fn a_message_sent_in_one_tab_reaches_the_users_other_tabs_and_a_resume_but_no_one_else() {
    let app = TestApp::spawn().await;
    let (cookie, _) = app.signed_up_cookie("tabs@example.com").await;
    let (other_cookie, _) = app.signed_up_cookie("someone-else@example.com").await;
    let mut tab_a = app.ws(&cookie, "").await;
    let epoch = tab_a.ready().await["payload"]["epoch"].as_str().unwrap().to_string();
    let mut tab_b = app.ws(&cookie, "").await;
    tab_b.ready().await;
    let mut stranger = app.ws(&other_cookie, "").await;
    stranger.ready().await;
    let before = last_seq(&tab_a);

    let params = json!({ "sessionKey": "main", "message": "typed in tab A", "idempotencyKey": "idem-a-1" });
    tab_a.request("a1", "chat.send", params).await;
    let mine = tab_b.until_event("roost.message").await;
    assert_eq!(
        mine["payload"],
        json!({ "sessionKey": "main", "idempotencyKey": "idem-a-1", "message": "typed in tab A", "ts": mine["payload"]["ts"] })
    );
    assert!(mine["roostSeq"].as_u64().is_some_and(|s| s > before), "numbered like other events: {mine}");
    // Tab B then sees the reply, after the message.
    tab_b.until("the reply", |f| f["event"] == "chat" && f["payload"]["state"] == "final").await;
    tab_a.until("the reply", |f| f["event"] == "chat" && f["payload"]["state"] == "final").await;
    assert_eq!(events(&tab_a, "roost.message").count(), 0, "the sending tab already shows it");

    // The other user's socket hears its own run end, and never tab A's message.
    stranger.chat("main", "mine").await;
    assert_eq!(events(&stranger, "roost.message").count(), 0, "their only message was their own");
    assert!(!stranger.all_bytes().contains("typed in tab A"));

    // A tab that was away gets it from the replay buffer.
    let mut resumed = app.ws(&cookie, &format!("?resume={epoch}:{before}")).await;
    resumed.ready().await;
    let replayed = resumed.until_event("roost.message").await;
    assert_eq!(replayed["payload"]["idempotencyKey"], "idem-a-1");
    assert_eq!(replayed["roostSeq"], mine["roostSeq"]);
}

#[tokio::test]
async fn a_retried_send_with_the_same_key_runs_once() {
    let app = TestApp::spawn().await;
    let (cookie, _) = app.signed_up_cookie("retry@example.com").await;
    let mut ws = app.ws(&cookie, "").await;
    ws.ready().await;
    let params = json!({ "sessionKey": "main", "message": "only once", "idempotencyKey": "idem-once" });
    ws.request("r1", "chat.send", params.clone()).await;
    ws.until("the reply", |f| f["event"] == "chat" && f["payload"]["state"] == "final").await;
    ws.request("r2", "chat.send", params).await;
    let answer = ws.until("the retry's answer", |f| f["id"] == "r2").await;
    assert_eq!(answer["ok"], true, "{answer}");
    let history = app.json_as(&cookie, "/api/sessions/main/history").await;
    let sent = history["messages"].as_array().unwrap().iter().filter(|m| m["text"] == "only once").count();
    assert_eq!(sent, 1, "{history}");
}

#[tokio::test]
async fn the_page_gets_a_heartbeat_it_can_watch() {
    let app = TestApp::spawn_with(&["--browser-ping-secs", "1"]).await;
    let (cookie, _) = app.signed_up_cookie("tick@example.com").await;
    let mut ws = app.ws(&cookie, "").await;
    let ready = ws.ready().await;
    assert_eq!(ready["payload"]["heartbeatMs"], 1000);
    // Pings alone keep the client's per-frame wait alive, so bound the whole wait.
    let tick = tokio::time::timeout(std::time::Duration::from_secs(30), ws.until_event("roost.tick"))
        .await
        .expect("a roost.tick with the pings");
    assert!(tick.get("roostSeq").is_none(), "ticks are not kept for resume: {tick}");
}

#[tokio::test]
async fn a_failed_reply_stays_marked_in_history() {
    let app = TestApp::spawn().await;
    let (cookie, user_id) = app.signed_up_cookie("failed-run@example.com").await;
    let mut ws = app.ws(&cookie, "").await;
    ws.ready().await;
    ws.chat("main", "this one works").await;
    let agent = app.state.machines.simulated().unwrap().agent(&user_id).await.unwrap();
    agent.set_reply(Reply::Error("the model is overloaded".into()));
    ws.request(
        "e1",
        "chat.send",
        json!({ "sessionKey": "main", "message": "this one fails", "idempotencyKey": "e-1" }),
    )
    .await;
    ws.until("error", |f| f["event"] == "chat" && f["payload"]["state"] == "error").await;
    // The end is written in the background, just after the event goes out.
    wait_until("the end is kept", || async {
        let history = app.json_as(&cookie, "/api/sessions/main/history").await;
        history["messages"].as_array().unwrap().iter().any(|m| m.get("end").is_some())
    })
    .await;
    let history = app.json_as(&cookie, "/api/sessions/main/history").await;
    let messages = history["messages"].as_array().unwrap();
    let marked: Vec<&Value> = messages.iter().filter(|m| m.get("end").is_some()).collect();
    assert_eq!(marked.len(), 1, "{history}");
    assert_eq!(marked[0]["text"], "this one fails", "no reply, so the user's message carries it: {history}");
    assert_eq!(marked[0]["end"]["state"], "error");
    // What the page was shown: Roost's own reason, on this server without a model.
    let shown = marked[0]["end"]["message"].as_str().unwrap();
    assert!(shown.starts_with("No model is configured"), "{history}");

    // Kept in the database: a restart of Roost still shows the reply as failed.
    drop(ws);
    let app = app.restart().await;
    let history = app.json_as(&cookie, "/api/sessions/main/history").await;
    let marked: Vec<&Value> =
        history["messages"].as_array().unwrap().iter().filter(|m| m.get("end").is_some()).collect();
    assert_eq!(marked.len(), 1, "after a restart: {history}");
    assert_eq!(
        (marked[0]["text"].as_str(), marked[0]["end"]["state"].as_str()),
        (Some("this one fails"), Some("error"))
    );

    // A deleted chat, or account, takes its marks along.
    let res = app.send_as(&cookie, reqwest::Method::DELETE, "/api/sessions/main", None).await;
    assert!(res.status().is_success() || res.status() == 404, "{}", res.status());
    let left = app.sql(&format!("SELECT count(*) FROM chat_run_ends WHERE user_id = '{user_id}'")).await;
    assert!(matches!(left[0], libsql::Value::Integer(0)), "{left:?}");
}

#[tokio::test]
async fn a_send_the_agent_refuses_never_shows_in_the_other_tabs() {
    let app = TestApp::spawn().await;
    let (cookie, _) = app.signed_up_cookie("refused@example.com").await;
    let mut tab_a = app.ws(&cookie, "").await;
    tab_a.ready().await;
    let mut tab_b = app.ws(&cookie, "").await;
    tab_b.ready().await;
    // The agent refuses an empty idempotency key.
    tab_a
        .request("bad", "chat.send", json!({ "sessionKey": "main", "message": "refused", "idempotencyKey": "" }))
        .await;
    let answer = tab_a.until("the refusal", |f| f["id"] == "bad").await;
    assert_eq!(answer["ok"], false, "{answer}");
    // Then one the agent takes: tab B hears that one, and only that one.
    tab_a
        .request("good", "chat.send", json!({ "sessionKey": "main", "message": "taken", "idempotencyKey": "k-2" }))
        .await;
    let mine = tab_b.until_event("roost.message").await;
    assert_eq!(mine["payload"]["message"], "taken");
    assert!(!tab_b.all_bytes().contains("refused"));
}
