//! Backups on Fly (issue 15 §5): the gateway against the fake Machines API, each "machine" the
//! real sidecar (`roost_agent::proxy`, in process) on a volume of its own (a temp dir), in front
//! of a simulated OpenClaw that keeps its chats on that volume. A stand-in for the sidecar's
//! supervisor stops and starts that OpenClaw when the sidecar pauses it for a restore.
//!
//! chat and file → stop → export (the machine is woken) → delete the machine → a new one →
//! import → the history and the file are back; a tampered archive is refused and nothing
//! changes; another user's requests never reach this user's state; no platform secret is in it.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use fakes::fly::{FakeFly, FakeFlyOptions};
use gateway::domain::UserId;
use gateway::machines::simulated::backup::{read_sessions, write_sessions};
use gateway::machines::simulated::{Options as AgentOptions, SimulatedAgent, Transcripts};
use roost_agent::router::Context;
use roost_agent::secret::AgentSecret;
use roost_agent::supervisor::{Pause, Stage};
use serde_json::Value;
use tokio::sync::watch;

use crate::export::{download, entries, fresh_history, upload};
use crate::fly_rig::late_forwarder;
use crate::fly_sidecar::fly_app;
use crate::helpers::{TestApp, contains, error_code};

/// One user's Fly machine: its volume, its sidecar, and the chats its OpenClaw keeps.
struct Machine {
    sidecar: SocketAddr,
    volume: tempfile::TempDir,
    transcripts: Transcripts,
    /// The stages the stand-in supervisor went through.
    stages: Arc<Mutex<Vec<Stage>>>,
    _shutdown: watch::Sender<bool>,
}

impl Machine {
    /// A fresh machine for `user`: an empty volume, its sidecar admitting the user's secret.
    async fn new(app: &TestApp, user: &UserId) -> Self {
        let token = gateway::agent_credentials::gateway_token(&app.state.secret, user);
        let secret = gateway::agent_credentials::agent_secret(&app.state.secret, user);
        let volume = tempfile::tempdir().unwrap();
        let state_dir = volume.path().join("openclaw");
        std::fs::create_dir(&state_dir).unwrap();
        let transcripts = Transcripts::default();
        let (upstream, openclaw) = late_forwarder().await;
        let options = AgentOptions { token, transcripts: transcripts.clone(), ..Default::default() };
        let (stage_tx, stage) = watch::channel(Stage::Starting { start: 1 });
        let (pause, paused) = Pause::new(Duration::from_secs(5));
        let (shutdown_tx, shutdown) = watch::channel(false);
        let stages = supervise(options, openclaw, state_dir.clone(), paused, stage_tx, shutdown.clone()).await;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let sidecar = listener.local_addr().unwrap();
        let ctx = Arc::new(Context {
            secret: AgentSecret::parse(&secret).unwrap(),
            upstream,
            stage,
            state_dir,
            pause,
            openclaw_version: None,
        });
        tokio::spawn(roost_agent::proxy::serve(listener, ctx, 64, shutdown.clone()));
        let sidecar = front(sidecar, shutdown).await;
        Self { sidecar, volume, transcripts, stages, _shutdown: shutdown_tx }
    }

    fn state_dir(&self) -> PathBuf {
        self.volume.path().join("openclaw")
    }

    /// What OpenClaw does as it goes: its transcripts are on the volume.
    fn save_chats(&self) {
        write_sessions(&self.state_dir(), &self.transcripts).unwrap();
    }

    fn was_paused(&self) -> bool {
        self.stages.lock().unwrap().contains(&Stage::Paused)
    }
}

/// Stands in for `roost_agent::supervisor::run`: starts the simulated OpenClaw, stops it when a
/// pause is asked for, and starts it again afterwards on what is on the volume then. The
/// machine is gone (every connection to it cut) once its [`Machine`] is dropped.
async fn supervise(
    options: AgentOptions,
    openclaw: Arc<Mutex<Option<SocketAddr>>>,
    state_dir: PathBuf,
    mut paused: watch::Receiver<bool>,
    stage: watch::Sender<Stage>,
    mut gone: watch::Receiver<bool>,
) -> Arc<Mutex<Vec<Stage>>> {
    let stages = Arc::new(Mutex::new(vec![Stage::Starting { start: 1 }]));
    let seen = stages.clone();
    let first = SimulatedAgent::spawn(options.clone()).await.unwrap();
    *openclaw.lock().unwrap() = Some(first.addr());
    tokio::spawn(async move {
        let mut running = Some(first);
        let mut start = 1;
        loop {
            tokio::select! {
                changed = paused.changed() => if changed.is_err() { break },
                _ = gone.changed() => break,
            }
            let now = if *paused.borrow_and_update() {
                *openclaw.lock().unwrap() = None;
                if let Some(agent) = running.take() {
                    agent.shutdown();
                }
                Stage::Paused
            } else {
                read_sessions(&state_dir, &options.transcripts).unwrap();
                let agent = SimulatedAgent::spawn(options.clone()).await.unwrap();
                *openclaw.lock().unwrap() = Some(agent.addr());
                running = Some(agent);
                start += 1;
                Stage::Starting { start }
            };
            seen.lock().unwrap().push(now.clone());
            let _ = stage.send(now);
        }
        *openclaw.lock().unwrap() = None;
        if let Some(agent) = running {
            agent.shutdown();
        }
    });
    stages
}

/// The machine's network address: forwards to its sidecar, and cuts every connection once the
/// machine is gone, as a deleted machine does (pooled connections included).
async fn front(sidecar: SocketAddr, mut gone: watch::Receiver<bool>) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let mut connections = tokio::task::JoinSet::new();
        loop {
            tokio::select! {
                accepted = listener.accept() => {
                    let Ok((mut inbound, _)) = accepted else { break };
                    connections.spawn(async move {
                        if let Ok(mut outbound) = tokio::net::TcpStream::connect(sidecar).await {
                            let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                        }
                    });
                }
                _ = gone.changed() => break,
            }
        }
        connections.abort_all();
    });
    addr
}

async fn fake_fly() -> FakeFly {
    FakeFly::spawn(FakeFlyOptions { transition_step: Some(Duration::from_millis(5)), ..Default::default() }).await
}

async fn put_file(app: &TestApp, cookie: &str, path: &str, body: &'static str) {
    let res = reqwest::Client::new()
        .put(app.url(&format!("/api/files/content?path={path}")))
        .header("cookie", cookie)
        .header("origin", &app.origin)
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap()
}

#[tokio::test]
async fn fly_a_backup_wakes_the_machine_and_brings_everything_back_after_it_is_deleted() {
    let fake = fake_fly().await;
    let (forward, target) = late_forwarder().await;
    let app = fly_app(&format!("ws://{forward}/"), &fake).await;
    let (cookie, user_id) = app.signed_up_cookie("fly-backup@example.com").await;
    let user = UserId::parse(&user_id).unwrap();
    let first = Machine::new(&app, &user).await;
    *target.lock().unwrap() = Some(first.sidecar);

    let mut ws = app.ws(&cookie, "").await;
    ws.stages_until_ready().await;
    ws.chat("main", "remember the blue door").await;
    drop(ws);
    first.save_chats();
    put_file(&app, &cookie, "plan.md", "1. paint the door").await;
    let bot_token = b"MTk4NjIyNDgzNDcxOTI1MjQ4.Cl2FMQ.ZnCjm1XVW7vRze4b7Cq4se7kKWs";
    app.state.machines.put_secret_file(&user, "discord-ab12.token", Some(bot_token)).await.unwrap();

    // A sleeping agent: the backup wakes its machine, and the user's pages see the wake.
    app.state.machines.stop(&user).await.unwrap();
    let (_, mut stages) = app.state.machines.subscribe(&user);
    let archive = download(&app, &cookie).await;
    let mut shown = Vec::new();
    while let Ok(status) = stages.try_recv() {
        shown.push(status.detail);
    }
    assert!(shown.iter().any(|d| d.contains("waking your agent's machine")), "{shown:?}");

    let listed = entries(&archive);
    assert_eq!(listed[0].0, "manifest.json");
    let paths: Vec<&str> = listed.iter().map(|e| e.0.as_str()).collect();
    assert!(paths.contains(&"workspace/plan.md"), "{paths:?}");
    assert!(paths.iter().any(|p| p.starts_with("agents/main/sessions/")), "{paths:?}");
    let everything: Vec<u8> = listed.iter().flat_map(|e| e.1.clone()).collect();
    let secrets = [
        gateway::agent_credentials::gateway_token(&app.state.secret, &user),
        gateway::agent_credentials::agent_secret(&app.state.secret, &user),
        gateway::agent_credentials::llm_credential(&app.state.secret, &user),
        String::from_utf8(bot_token.to_vec()).unwrap(),
    ];
    for secret in &secrets {
        assert!(!contains(&everything, secret), "a platform secret is in the backup");
    }
    assert!(contains(&everything, "remember the blue door"));

    // Delete the machine and its volume; a new one starts empty.
    app.state.machines.destroy(&user).await.unwrap();
    assert!(fake.app_names().is_empty(), "the app and its volume are gone");
    drop(first);
    let second = Machine::new(&app, &user).await;
    *target.lock().unwrap() = Some(second.sidecar);
    app.state.machines.ensure_ready(&user).await.unwrap();
    assert_eq!(fresh_history(&app, &cookie).await["messages"].as_array().unwrap().len(), 0, "a new, empty agent");

    let res = upload(&app, &cookie, archive).await;
    assert_eq!(res.status(), 200);
    let restored: Value = res.json().await.unwrap();
    assert_eq!(restored["restored"]["files"], listed.len() - 1, "{restored}");
    assert!(second.was_paused(), "OpenClaw was paused for the swap, the machine kept running");
    assert_eq!(read(&second.state_dir().join("workspace/plan.md")), "1. paint the door");
    let history = fresh_history(&app, &cookie).await;
    assert_eq!(history["messages"][0]["text"], "remember the blue door", "{history}");
}

#[tokio::test]
async fn fly_a_tampered_backup_is_refused_and_nothing_changes() {
    let fake = fake_fly().await;
    let (forward, target) = late_forwarder().await;
    let app = fly_app(&format!("ws://{forward}/"), &fake).await;
    let (cookie, user_id) = app.signed_up_cookie("fly-tamper@example.com").await;
    let user = UserId::parse(&user_id).unwrap();
    let machine = Machine::new(&app, &user).await;
    *target.lock().unwrap() = Some(machine.sidecar);
    let mut ws = app.ws(&cookie, "").await;
    ws.stages_until_ready().await;
    ws.chat("main", "keep this chat").await;
    drop(ws);
    machine.save_chats();
    put_file(&app, &cookie, "plan.md", "mine").await;
    let archive = download(&app, &cookie).await;

    let mut plain = Vec::new();
    std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(archive.as_slice()), &mut plain).unwrap();
    let at = plain.windows(4).position(|w| w == b"mine").unwrap();
    plain[at..at + 4].copy_from_slice(b"MINE");
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    std::io::Write::write_all(&mut gz, &plain).unwrap();
    let tampered = gz.finish().unwrap();
    for (name, bad, code) in [
        ("checksum", tampered, "checksum_mismatch"),
        ("not gzip", b"PK\x03\x04 not a backup".to_vec(), "not_gzip"),
        ("truncated", archive[..archive.len() / 2].to_vec(), "damaged"),
    ] {
        assert_eq!(error_code(upload(&app, &cookie, bad).await).await, (422, code.to_string()), "{name}");
        assert_eq!(read(&machine.state_dir().join("workspace/plan.md")), "mine", "{name}");
        assert!(!machine.was_paused(), "{name}: OpenClaw was never paused");
        assert!(app.state.machines.is_up(&user).await, "{name}: the agent kept running");
    }
    assert_eq!(fresh_history(&app, &cookie).await["messages"][0]["text"], "keep this chat");
    assert_eq!(upload(&app, &cookie, archive).await.status(), 200, "the untampered backup is taken");
    assert!(machine.was_paused());
}

#[tokio::test]
async fn fly_another_user_never_reaches_your_machines_state() {
    let fake = fake_fly().await;
    let (forward, target) = late_forwarder().await;
    let app = fly_app(&format!("ws://{forward}/"), &fake).await;
    let (alice, alice_id) = app.signed_up_cookie("fly-alice@example.com").await;
    let alice_user = UserId::parse(&alice_id).unwrap();
    let machine = Machine::new(&app, &alice_user).await;
    *target.lock().unwrap() = Some(machine.sidecar);
    let mut ws = app.ws(&alice, "").await;
    ws.stages_until_ready().await;
    ws.chat("main", "alice's secret plan").await;
    drop(ws);
    machine.save_chats();
    put_file(&app, &alice, "plan.md", "alice's file").await;
    let alices = download(&app, &alice).await;

    // Bob's requests are sent to Alice's machine (the forwarder has one target): her sidecar
    // admits only her machine's secret, so neither his backup nor his restore touches it.
    let (bob, _) = app.signed_up_cookie("fly-bob@example.com").await;
    let res = reqwest::Client::new().get(app.url("/api/export")).header("cookie", &bob).send().await.unwrap();
    assert_ne!(res.status(), 200);
    assert!(!contains(&res.bytes().await.unwrap(), "alice's secret plan"));
    assert_ne!(upload(&app, &bob, alices.clone()).await.status(), 200);
    assert!(!machine.was_paused(), "Alice's agent was never paused");
    std::fs::write(machine.state_dir().join("workspace/plan.md"), "alice's newer file").unwrap();
    assert_eq!(read(&machine.state_dir().join("workspace/plan.md")), "alice's newer file");

    // Without a session, or with an API token: refused.
    assert_eq!(reqwest::Client::new().get(app.url("/api/export")).send().await.unwrap().status(), 401);
    let anonymous = reqwest::Client::new()
        .post(app.url("/api/import?confirm=replace"))
        .header("Origin", &app.origin)
        .body(alices)
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), 401);
    assert!(!machine.was_paused());
}
