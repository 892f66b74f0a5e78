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
    let state_dir = std::env::temp_dir().join(format!("roost-fly-sidecar-{}", uuid::Uuid::new_v4()));
    sidecar_in(secret, upstream, state_dir).await
}

async fn sidecar_in(
    secret: &str,
    upstream: SocketAddr,
    state_dir: std::path::PathBuf,
) -> (SocketAddr, watch::Sender<bool>, watch::Sender<Stage>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stage_tx, stage) = watch::channel(Stage::Starting { start: 1 });
    let (shutdown_tx, shutdown) = watch::channel(false);
    // Nothing here pauses OpenClaw: backups on Fly are `fly_export`'s.
    let pause = roost_agent::supervisor::Pause::new(Duration::from_secs(1)).0;
    let secret = AgentSecret::parse(secret).unwrap();
    let ctx = Arc::new(Context { secret, upstream, stage, state_dir, pause, openclaw_version: None });
    tokio::spawn(roost_agent::proxy::serve(listener, ctx, 64, shutdown));
    (addr, shutdown_tx, stage_tx)
}

pub async fn fly_app(address: &str, fake: &FakeFly) -> TestApp {
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

#[tokio::test]
async fn fly_bot_token_files_are_written_on_the_volume_through_the_sidecar() {
    use std::os::unix::fs::PermissionsExt;
    let fake =
        FakeFly::spawn(FakeFlyOptions { transition_step: Some(Duration::from_millis(5)), ..Default::default() }).await;
    let (forward, target) = late_forwarder().await;
    let app = fly_app(&format!("ws://{forward}/"), &fake).await;
    let (cookie, user_id) = app.signed_up_cookie("fly-bot@example.com").await;
    let user = gateway::domain::UserId::parse(&user_id).unwrap();
    let token = gateway::agent_credentials::gateway_token(&app.state.secret, &user);
    let agent = SimulatedAgent::spawn(AgentOptions { token, ..Default::default() }).await.unwrap();
    let secret = gateway::agent_credentials::agent_secret(&app.state.secret, &user);
    let volume = tempfile::tempdir().unwrap();
    let (sidecar_addr, _shutdown, _stage) = sidecar_in(&secret, agent.addr(), volume.path().to_path_buf()).await;
    *target.lock().unwrap() = Some(sidecar_addr);

    let bot_token = b"MTk4NjIyNDgzNDcxOTI1MjQ4.Cl2FMQ.ZnCjm1XVW7vRze4b7Cq4se7kKWs";
    // Down, a token cannot be written (the connect route starts the agent first).
    let down = app.state.machines.put_secret_file(&user, "discord-ab12.token", Some(bot_token)).await;
    assert!(down.is_err(), "{down:?}");

    let mut ws = app.ws(&cookie, "").await;
    ws.stages_until_ready().await;
    let path = app.state.machines.put_secret_file(&user, "discord-ab12.token", Some(bot_token)).await.unwrap();
    let on_volume = volume.path().join("roost-secrets/discord-ab12.token");
    assert_eq!(path, on_volume.display().to_string(), "the path the agent reads it at");
    assert_eq!(std::fs::read(&on_volume).unwrap(), bot_token);
    assert_eq!(std::fs::metadata(&on_volume).unwrap().permissions().mode() & 0o777, 0o600);
    // Roost's names only: nothing outside the secrets directory.
    assert!(app.state.machines.put_secret_file(&user, "../openclaw.json", Some(b"{}")).await.is_err());
    assert!(!volume.path().join("openclaw.json").exists());

    app.state.machines.put_secret_file(&user, "discord-ab12.token", None).await.unwrap();
    assert!(!on_volume.exists());
}

#[tokio::test]
async fn fly_workspace_files_go_through_the_sidecar_and_need_a_running_machine() {
    let fake =
        FakeFly::spawn(FakeFlyOptions { transition_step: Some(Duration::from_millis(5)), ..Default::default() }).await;
    let (forward, target) = late_forwarder().await;
    let app = fly_app(&format!("ws://{forward}/"), &fake).await;
    let (cookie, user_id) = app.signed_up_cookie("fly-files@example.com").await;
    let user = gateway::domain::UserId::parse(&user_id).unwrap();
    let token = gateway::agent_credentials::gateway_token(&app.state.secret, &user);
    let agent = SimulatedAgent::spawn(AgentOptions { token, ..Default::default() }).await.unwrap();
    let secret = gateway::agent_credentials::agent_secret(&app.state.secret, &user);
    let volume = tempfile::tempdir().unwrap();
    let (sidecar_addr, _shutdown, _stage) = sidecar_in(&secret, agent.addr(), volume.path().to_path_buf()).await;
    *target.lock().unwrap() = Some(sidecar_addr);
    let send = |method: reqwest::Method, path: &str, body: &'static [u8]| {
        reqwest::Client::new()
            .request(method, app.url(path))
            .header("cookie", &cookie)
            .header("origin", &app.origin)
            .body(body)
            .send()
    };

    // Stopped: a plain sentence, and the machine is not woken for it.
    let down = send(reqwest::Method::GET, "/api/files", b"").await.unwrap();
    assert_eq!(crate::helpers::error_code(down).await, (409, "agent_stopped".to_string()));

    let mut ws = app.ws(&cookie, "").await;
    ws.stages_until_ready().await;
    let put = send(reqwest::Method::PUT, "/api/files/content?path=notes.md", b"# On the volume").await.unwrap();
    assert_eq!(put.status(), 201);
    let on_volume = volume.path().join("workspace/notes.md");
    assert_eq!(std::fs::read(&on_volume).unwrap(), b"# On the volume");
    let listed: serde_json::Value = send(reqwest::Method::GET, "/api/files", b"").await.unwrap().json().await.unwrap();
    assert_eq!(listed["entries"][0]["name"], "notes.md", "{listed}");
    let read = send(reqwest::Method::GET, "/api/files/content?path=notes.md", b"").await.unwrap();
    assert_eq!(read.headers()["content-type"], "text/plain; charset=utf-8");
    assert_eq!(read.text().await.unwrap(), "# On the volume");

    // The sidecar's own refusals come back as the same answers the local provider gives.
    std::fs::write(volume.path().join("openclaw.json"), b"{}").unwrap();
    std::os::unix::fs::symlink(volume.path().join("openclaw.json"), volume.path().join("workspace/cfg")).unwrap();
    let out = send(reqwest::Method::GET, "/api/files/content?path=cfg", b"").await.unwrap();
    assert_eq!(crate::helpers::error_code(out).await, (403, "outside".to_string()));
    let missing = send(reqwest::Method::GET, "/api/files/content?path=gone.md", b"").await.unwrap();
    assert_eq!(crate::helpers::error_code(missing).await, (404, "not_found".to_string()));

    let deleted = send(reqwest::Method::DELETE, "/api/files?path=notes.md", b"").await.unwrap();
    assert_eq!(deleted.status(), 200);
    assert!(!on_volume.exists());
}
