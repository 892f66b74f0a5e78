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
