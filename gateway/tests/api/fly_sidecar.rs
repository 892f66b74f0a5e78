//! `--agent-provider fly` through the real sidecar (`roost_agent::proxy`, in process) in front of
//! a simulated OpenClaw: readiness and the relay's WebSocket must carry the user's agent secret,
//! or the sidecar forwards nothing.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use fakes::fly::{FakeFly, FakeFlyOptions};
use gateway::machines::simulated::{Options as AgentOptions, SimulatedAgent};
use roost_agent::router::Context;
use roost_agent::secret::AgentSecret;
use roost_agent::supervisor::Stage;
use tokio::sync::watch;

use crate::fly_rig::late_forwarder;
use crate::helpers::TestApp;

/// A sidecar admitting `secret`, forwarding to `upstream`; it lives as long as the returned
/// senders.
async fn sidecar(secret: &str, upstream: SocketAddr) -> (SocketAddr, watch::Sender<bool>, watch::Sender<Stage>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stage_tx, stage) = watch::channel(Stage::Starting { start: 1 });
    let (shutdown_tx, shutdown) = watch::channel(false);
    let ctx = Arc::new(Context { secret: AgentSecret::parse(secret).unwrap(), upstream, stage });
    tokio::spawn(roost_agent::proxy::serve(listener, ctx, 64, shutdown));
    (addr, shutdown_tx, stage_tx)
}

async fn fly_app(address: &str, fake: &FakeFly) -> TestApp {
    let base = fake.base_url();
    TestApp::spawn_with(&[
        "--agent-provider",
        "fly",
        "--fly-api-token",
        fake.token(),
        "--fly-org",
        fake.org_slug(),
        "--fly-image",
        "registry.example/openclaw@sha256:00",
        "--fly-regions",
        "iad",
        "--fly-api-base",
        &base,
        "--fly-agent-address",
        address,
        "--agent-ready-timeout-secs",
        "20",
        "--no-prewarm",
    ])
    .await
}

#[tokio::test]
async fn fly_a_chat_goes_through_the_sidecar_with_the_users_agent_secret() {
    let fake =
        FakeFly::spawn(FakeFlyOptions { transition_step: Some(Duration::from_millis(5)), ..Default::default() }).await;
    let (forward, target) = late_forwarder().await;
    let app = fly_app(&format!("ws://{forward}/"), &fake).await;
    let (cookie, user_id) = app.signed_up_cookie("sidecar@example.com").await;
    let user = gateway::domain::UserId::parse(&user_id).unwrap();
    let token = gateway::agent_credentials::gateway_token(&app.state.secret, &user);
    let agent = SimulatedAgent::spawn(AgentOptions { token, ..Default::default() }).await.unwrap();
    let secret = gateway::agent_credentials::agent_secret(&app.state.secret, &user);
    let (sidecar_addr, _shutdown, _stage) = sidecar(&secret, agent.addr()).await;
    *target.lock().unwrap() = Some(sidecar_addr);

    let mut ws = app.ws(&cookie, "").await;
    let stages = ws.stages_until_ready().await;
    assert!(stages.iter().any(|s| s == "waiting_ready"), "{stages:?}");
    let reply = ws.chat("main", "hello").await;
    assert!(reply.starts_with("Hello from the simulated OpenClaw agent"), "{reply}");

    // The app secret the machine gets is the one the sidecar admits.
    let fly_app = fake.app_names().into_iter().next().expect("the user's app");
    assert_eq!(fake.secrets(&fly_app).0["ROOST_AGENT_SECRET"], secret);
}

#[tokio::test]
async fn fly_a_sidecar_that_refuses_roosts_secret_is_shown_to_the_user_and_never_ready() {
    let fake =
        FakeFly::spawn(FakeFlyOptions { transition_step: Some(Duration::from_millis(5)), ..Default::default() }).await;
    let (forward, target) = late_forwarder().await;
    let app = fly_app(&format!("ws://{forward}/"), &fake).await;
    let (cookie, user_id) = app.signed_up_cookie("refused@example.com").await;
    let user = gateway::domain::UserId::parse(&user_id).unwrap();
    let token = gateway::agent_credentials::gateway_token(&app.state.secret, &user);
    let agent = SimulatedAgent::spawn(AgentOptions { token, ..Default::default() }).await.unwrap();
    // Another user's machine: its sidecar admits its own secret, not this user's.
    let other = gateway::domain::UserId::generate();
    let theirs = gateway::agent_credentials::agent_secret(&app.state.secret, &other);
    let (sidecar_addr, _shutdown, _stage) = sidecar(&theirs, agent.addr()).await;
    *target.lock().unwrap() = Some(sidecar_addr);

    let mut ws = app.ws(&cookie, "").await;
    let shown = tokio::time::timeout(Duration::from_secs(30), async {
        loop {
            let frame = ws.next().await.expect("the socket stays open");
            assert_ne!(frame["event"], "roost.ready", "ready through a sidecar that refused Roost");
            let detail = frame["payload"]["detail"].as_str().unwrap_or_default().to_string();
            if frame["event"] == "roost.status" && detail.contains("does not accept Roost's key") {
                return detail;
            }
        }
    })
    .await
    .expect("the refusal reaches the user's page");
    assert!(!shown.contains(&theirs), "{shown}");
}
