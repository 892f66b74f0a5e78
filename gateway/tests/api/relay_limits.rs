//! The relay's bounds and timeouts: sockets per user, heartbeats both ways, links that retire.

use fakes::openclaw::{FakeOpenClaw, FakeOpenClawOptions};

use crate::helpers::{TestApp, error_code, wait_until};
use crate::ws::Client;

fn user(id: &str) -> gateway::domain::UserId {
    gateway::domain::UserId::parse(id).unwrap()
}

#[tokio::test]
async fn a_user_may_hold_16_sockets_counting_those_still_starting() {
    // Without prewarm the first sockets wait for the agent to start: they count all the same.
    let app = TestApp::spawn_with(&["--no-prewarm"]).await;
    let (cookie, user_id) = app.signed_up_cookie("cap@example.com").await;
    let opening = (0..gateway::relay::MAX_SOCKETS_PER_USER).map(|_| app.ws(&cookie, ""));
    let mut open: Vec<Client> = futures_util::future::join_all(opening).await;
    assert_eq!(app.state.relays.socket_count(&user(&user_id)), gateway::relay::MAX_SOCKETS_PER_USER);
    let res = app.ws_upgrade_refusal(&cookie, "").await;
    assert_eq!(res.headers()["retry-after"], "5");
    assert_eq!(error_code(res).await, (429, "too_many_sockets".to_string()));
    let (other_cookie, _) = app.signed_up_cookie("cap-other@example.com").await;
    app.ws(&other_cookie, "").await.ready().await;

    drop(open.pop());
    wait_until("the closed socket frees its place", || async {
        app.state.relays.socket_count(&user(&user_id)) < gateway::relay::MAX_SOCKETS_PER_USER
    })
    .await;
    app.ws(&cookie, "").await.ready().await;
}

#[tokio::test]
async fn a_browser_that_stops_answering_pings_is_closed() {
    let app = TestApp::spawn_with(&["--browser-ping-secs", "1", "--browser-pong-deadline-secs", "2"]).await;
    let (cookie, user_id) = app.signed_up_cookie("pong@example.com").await;
    let mut ws = app.ws(&cookie, "").await;
    ws.ready().await;
    // Not reading means not answering pings.
    wait_until("the server gives up on the socket", || async { app.state.relays.socket_count(&user(&user_id)) == 0 })
        .await;
    assert_eq!(ws.closed().await, (1001, "no heartbeat".to_string()));
}

#[tokio::test]
async fn a_silent_agent_link_is_closed_and_browsers_told() {
    let agent = FakeOpenClaw::spawn(FakeOpenClawOptions { any_token: true, ..FakeOpenClawOptions::default() }).await;
    let url = agent.ws_url();
    let app =
        TestApp::spawn_with(&["--agent-ping-secs", "1", "--agent-silence-secs", "2", "--fake-agent-url", &url]).await;
    let (cookie, _) = app.signed_up_cookie("silent@example.com").await;
    let mut ws = app.ws(&cookie, "").await;
    ws.ready().await;
    agent.stall_all();
    let (code, reason) = ws.closed().await;
    assert_eq!(code, 1011);
    assert!(reason.contains("lost"), "{reason}");
}

#[tokio::test]
async fn a_link_opened_for_history_alone_retires_when_idle() {
    let app = TestApp::spawn_with(&["--agent-link-idle-secs", "1"]).await;
    let (cookie, user_id) = app.signed_up_cookie("history-link@example.com").await;
    wait_until("the agent is up", || async { app.state.machines.address_if_ready(&user(&user_id)).await.is_some() })
        .await;
    let history = app.json_as(&cookie, "/api/sessions/main/history").await;
    assert_eq!(history["stale"], false, "answered by the agent, over a link: {history}");
    assert_eq!(app.state.relays.link_count(), 1);
    wait_until("the link is retired", || async { app.state.relays.link_count() == 0 }).await;
    let agent = app.state.machines.simulated().unwrap().agent(&user_id).await.unwrap();
    wait_until("the agent sees the link go", || async { agent.open_connections() == 0 }).await;
}
