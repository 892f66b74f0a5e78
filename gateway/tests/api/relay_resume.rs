//! Resuming with `?resume=<epoch>:<seq>`: after a restart, and after being dropped for lagging.

use serde_json::{Value, json};

use crate::helpers::TestApp;
use crate::ws::Client;

fn last_seq(ws: &Client) -> u64 {
    ws.received
        .iter()
        .filter_map(|t| serde_json::from_str::<Value>(t).ok()?["roostSeq"].as_u64())
        .max()
        .expect("some numbered events")
}

#[tokio::test]
async fn after_a_restart_an_old_cursor_gets_a_gap_and_history_has_everything() {
    use fakes::openclaw::{FakeOpenClaw, FakeOpenClawOptions};
    // One agent that outlives Roost, as a real agent's transcript does.
    let agent = FakeOpenClaw::spawn(FakeOpenClawOptions { any_token: true, ..FakeOpenClawOptions::default() }).await;
    let url = agent.ws_url();
    let app = TestApp::spawn_with(&["--fake-agent-url", &url]).await;
    let (cookie, _) = app.signed_up_cookie("restart@example.com").await;
    let mut ws = app.ws(&cookie, "").await;
    let epoch = ws.ready().await["payload"]["epoch"].as_str().expect("ready carries the epoch").to_string();
    let reply = ws.chat("main", "said before the restart").await;
    let cursor = format!("{epoch}:{}", last_seq(&ws));

    let app = app.restart().await;
    let mut ws = app.ws(&cookie, &format!("?resume={cursor}")).await;
    let ready = ws.ready().await;
    assert_ne!(ready["payload"]["epoch"], epoch.as_str(), "numbering starts a new epoch");
    let gap = ws.until_event("roost.gap").await;
    assert_eq!(gap["payload"]["epoch"], ready["payload"]["epoch"]);
    let history: Value = app.json_as(&cookie, "/api/sessions/main/history").await;
    let text = history.to_string();
    assert!(text.contains("said before the restart") && text.contains(&reply), "{history}");

    for stale in ["1".to_string(), format!("{epoch}:0")] {
        let mut ws = app.ws(&cookie, &format!("?resume={stale}")).await;
        ws.ready().await;
        ws.until_event("roost.gap").await;
    }
    let res = app.ws_upgrade_refusal(&cookie, "?resume=not-a-cursor").await;
    assert_eq!(crate::helpers::error_code(res).await, (400, "invalid_resume".to_string()));
}

#[tokio::test]
async fn a_browser_that_stops_reading_is_dropped_at_256_frames_and_resumes_without_loss() {
    let app = TestApp::spawn_with(&["--fake-agent-echo"]).await;
    let (cookie, user_id) = app.signed_up_cookie("slow@example.com").await;
    let user = gateway::domain::UserId::parse(&user_id).unwrap();
    let url = format!("ws://{}/ws", app.addr);
    let headers = [("cookie", cookie.as_str()), ("origin", app.origin.as_str())];
    let mut slow = Client::connect_with_small_window(&url, &headers).await;
    let epoch = slow.ready().await["payload"]["epoch"].as_str().unwrap().to_string();
    let before = slow.received.len();
    // Another tab makes the agent talk (each request comes back as one numbered event, sent to
    // both tabs); the slow tab reads nothing until the server has given up on it.
    let mut busy = app.ws(&cookie, "").await;
    busy.ready().await;
    let hub = app.state.relays.existing_hub(&user).await.unwrap();
    let pad = "p".repeat(1000);
    let mut n = 0;
    while hub.socket_count() == 2 {
        assert!(n < 5000, "the slow tab was never dropped");
        let id = format!("r{n}");
        busy.request(&id, "health", json!({ "pad": pad })).await;
        busy.until("echo", |f| f["payload"]["id"].as_str().is_some_and(|i| i.ends_with(&format!(":{id}")))).await;
        n += 1;
    }
    let (code, reason) = slow.closed().await;
    assert_eq!((code, reason.as_str()), (1013, "this connection fell behind; reconnect to resume"));
    assert!(slow.received.len() - before >= 256, "the 256 queued frames were delivered before the close");

    let seen = last_seq(&slow);
    let mut resumed = app.ws(&cookie, &format!("?resume={epoch}:{seen}")).await;
    resumed.ready().await;
    resumed.request("marker", "health", json!({})).await;
    let mut expected = seen + 1;
    loop {
        let frame = resumed.next().await.expect("frames until the marker");
        let Some(seq) = frame["roostSeq"].as_u64() else { continue };
        assert_eq!(seq, expected, "no event lost or repeated");
        expected += 1;
        if frame["payload"]["id"].as_str().is_some_and(|id| id.ends_with(":marker")) {
            break;
        }
    }
}

/// Sends `id` as a health request padded to about `pad` bytes and waits for its echo (one
/// numbered event, kept for resume).
async fn echoed(ws: &mut Client, id: &str, pad: &str) -> u64 {
    ws.request(id, "health", json!({ "pad": pad })).await;
    let suffix = format!(":{id}");
    let echo = ws.until("echo", |f| f["payload"]["id"].as_str().is_some_and(|i| i.ends_with(&suffix))).await;
    echo["roostSeq"].as_u64().expect("echoes are numbered")
}

#[tokio::test]
async fn past_the_global_replay_budget_the_oldest_users_events_go_and_they_get_a_gap() {
    const LIMIT: usize = 1024 * 1024;
    let app = TestApp::spawn_with(&["--fake-agent-echo", "--replay-memory-limit-mib", "1"]).await;
    let pad = "p".repeat(60 * 1024);
    // Alice chats a little, then goes away; her link and its events stay for the grace period.
    let (alice, _) = app.signed_up_cookie("alice@example.com").await;
    let mut ws = app.ws(&alice, "").await;
    let alice_epoch = ws.ready().await["payload"]["epoch"].as_str().unwrap().to_string();
    let first = echoed(&mut ws, "a1", &pad).await;
    for id in ["a2", "a3"] {
        echoed(&mut ws, id, &pad).await;
    }
    drop(ws);

    // Bob's events alone stay under his own 1 MiB cap, but with Alice's they pass the budget.
    let (bob, _) = app.signed_up_cookie("bob@example.com").await;
    let mut ws = app.ws(&bob, "").await;
    let bob_epoch = ws.ready().await["payload"]["epoch"].as_str().unwrap().to_string();
    let mut bob_seqs = Vec::new();
    for n in 0..16 {
        bob_seqs.push(echoed(&mut ws, &format!("b{n}"), &pad).await);
    }
    let relays = &app.state.relays;
    crate::helpers::wait_until("the buffers are within the budget", || async { relays.replay_bytes() <= LIMIT }).await;

    // Alice's events were the oldest: resuming from her first one, she is told of the hole.
    let mut resumed = app.ws(&alice, &format!("?resume={alice_epoch}:{first}")).await;
    resumed.ready().await;
    let gap = resumed.until_event("roost.gap").await;
    assert_eq!(gap["payload"]["lastSeq"], first + 2, "{gap}");
    assert!(gap["payload"]["message"].as_str().is_some_and(|m| m.contains("reload history")), "{gap}");
    // Bob's recent events are all still there.
    let since = bob_seqs[bob_seqs.len() - 4];
    let mut resumed = app.ws(&bob, &format!("?resume={bob_epoch}:{since}")).await;
    resumed.ready().await;
    for expected in &bob_seqs[bob_seqs.len() - 3..] {
        let frame = resumed.until("a replayed event", |f| f["roostSeq"].is_u64()).await;
        assert_eq!(frame["roostSeq"], *expected, "{frame}");
    }
}
