//! `--agent-provider fly` end to end: Roost drives the fake Machines API, and the address it
//! dials for the user's machine leads to the real `roost-agent` binary in front of the real
//! OpenClaw (the pinned runtime in `target/agent-runtime`), started with the environment and
//! secrets the fake says the machine was given, its model the fake LLM behind Roost's `/llm`.
//!
//! The fake machine's `started`/`stopped` is the Fly API's word only: the sidecar process is not
//! tied to it and stays up across the idle stop, so the wake proves Roost starts the machine
//! again through the API (and dials it again), not that OpenClaw boots twice.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant, SystemTime};

use fakes::fly::{FakeFly, FakeFlyOptions, Op};
use fakes::llm::{FakeLlm, FakeLlmOptions};
use provisioner::local::{Installer, Runtime};
use provisioner::{Progress, Stage};
use serde_json::{Value, json};
use tokio::process::{Child, Command};

use crate::e2e_openclaw::{READY_WAIT, REPLY_PREFIX, agent_slot, available};
use crate::fly_rig::late_forwarder;
use crate::helpers::{PASSWORD, TestApp, wait_until, wait_until_within};

fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

struct Quiet;
impl Progress for Quiet {
    fn report(&self, _: &str, _: Stage, _: &str) {}
}

async fn runtime() -> Runtime {
    let installer = Installer::new(repo_root().join("target/agent-runtime"), None, None);
    if let Ok(runtime) = installer.resolved().await {
        return runtime;
    }
    installer.ensure("e2e-fly", &Quiet).await.expect("the runtime installs");
    installer.resolved().await.expect("the runtime is installed")
}

/// Newest modification time of the files under `dir` (recursively).
fn newest(dir: &Path) -> SystemTime {
    let mut latest = SystemTime::UNIX_EPOCH;
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        let time = if path.is_dir() { newest(&path) } else { entry.metadata().unwrap().modified().unwrap() };
        latest = latest.max(time);
    }
    latest
}

/// The `roost-agent` binary cargo built into this test's target dir. `CARGO_BIN_EXE_*` exists
/// only inside the agent crate, and a `cargo build` from here would wait forever on the lock
/// cargo holds while tests run; `cargo test --workspace` builds it (the agent's own tests need
/// it), so it is there and fresh, and if not this fails (never skips) saying how to build it.
fn roost_agent_bin() -> PathBuf {
    // target/debug/deps/api-<hash> → target/debug/roost-agent
    let exe = std::env::current_exe().unwrap();
    let bin = exe.parent().and_then(Path::parent).unwrap().join("roost-agent");
    let how = "build it with `cargo build -p roost-agent` (`cargo test --workspace` does)";
    let built = std::fs::metadata(&bin)
        .and_then(|m| m.modified())
        .unwrap_or_else(|_| panic!("no roost-agent binary at {}: {how}", bin.display()));
    let agent = repo_root().join("agent");
    let sources =
        newest(&agent.join("src")).max(std::fs::metadata(agent.join("Cargo.toml")).unwrap().modified().unwrap());
    assert!(built >= sources, "{} is older than agent/src: {how}", bin.display());
    bin
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// The machine's sidecar: its model settings from the machine's config env, its secrets from the
/// app's secrets, as Fly hands them over; a temp dir stands in for the volume.
fn spawn_sidecar(
    bin: &Path,
    runtime: &Runtime,
    env: &Value,
    secrets: &std::collections::BTreeMap<String, String>,
    dir: &Path,
) -> (Child, u16) {
    let port = free_port();
    let mut command = Command::new(bin);
    command
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("ROOST_AGENT_LISTEN", format!("127.0.0.1:{port}"))
        .env("ROOST_AGENT_OPENCLAW_PORT", free_port().to_string())
        .env("ROOST_AGENT_STATE_DIR", dir.join("openclaw"))
        .env("ROOST_AGENT_HOME", dir.join("home"))
        .env("ROOST_AGENT_TMP_DIR", dir.join("tmp"))
        .env("ROOST_AGENT_NODE", &runtime.node)
        .env("ROOST_AGENT_OPENCLAW", &runtime.openclaw)
        .env("ROOST_AGENT_HEAP_MB", "1024")
        .env("ROOST_AGENT_OPENCLAW_LOG_FILE", dir.join("openclaw.log"));
    for name in ["ROOST_LLM_BASE_URL", "ROOST_LLM_API", "ROOST_LLM_MODEL"] {
        command.env(name, env[name].as_str().unwrap_or_else(|| panic!("the machine's env has {name}")));
    }
    for name in ["ROOST_AGENT_SECRET", "OPENCLAW_GATEWAY_TOKEN", "ROOST_LLM_CREDENTIAL"] {
        command.env(name, secrets.get(name).unwrap_or_else(|| panic!("the app's secrets hold {name}")));
    }
    let child = command.stdin(Stdio::null()).kill_on_drop(true).spawn().expect("roost-agent starts");
    (child, port)
}

/// Reads until `runId`'s final (or error) chat event; the reply text.
async fn reply(ws: &mut crate::ws::Client, session: &str, message: &str) -> String {
    let run = uuid::Uuid::new_v4().to_string();
    let params = json!({ "sessionKey": session, "message": message, "idempotencyKey": run });
    ws.request(&format!("send-{run}"), "chat.send", params).await;
    let done = ws
        .until("the reply", |f| {
            f["event"] == "chat"
                && f["payload"]["runId"] == run.as_str()
                && matches!(f["payload"]["state"].as_str(), Some("final" | "error"))
        })
        .await;
    assert_eq!(done["payload"]["state"], "final", "the agent answered: {done}");
    done["payload"]["message"]["content"][0]["text"].as_str().unwrap_or_default().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn e2e_fly_a_real_openclaw_behind_roost_agent_chats_idles_wakes_and_is_deleted() {
    if !available() {
        return;
    }
    let bin = roost_agent_bin();
    let runtime = runtime().await;
    let _slot = agent_slot("e2e_fly_a_real_openclaw_behind_roost_agent_chats_idles_wakes_and_is_deleted").await;
    let fake =
        FakeFly::spawn(FakeFlyOptions { transition_step: Some(Duration::from_millis(5)), ..Default::default() }).await;
    let llm = FakeLlm::spawn(FakeLlmOptions { api_key: "sk-operator".into(), ..FakeLlmOptions::default() }).await;
    let (forward, target) = late_forwarder().await;
    let (fly_base, llm_base, address) = (fake.base_url(), format!("{}/v1", llm.base_url()), format!("ws://{forward}/"));
    let app = TestApp::spawn_with(&[
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
        &fly_base,
        "--fly-agent-address",
        &address,
        "--agent-ready-timeout-secs",
        "240",
        "--agent-idle-timeout",
        "3s",
        "--no-prewarm",
        "--llm-openai-base-url",
        &llm_base,
        "--llm-openai-api-key",
        "sk-operator",
        "--llm-model",
        "fake-model",
    ])
    .await;
    let signed_up = Instant::now();
    let (cookie, user_id) = app.signed_up_cookie("fly-e2e@example.com").await;
    let user = gateway::domain::UserId::parse(&user_id).unwrap();

    // The first visit (no prewarm) provisions: one app, one volume, one machine, all the user's.
    let mut ws = app.ws(&cookie, "").await;
    ws.wait = READY_WAIT;
    wait_until_within("the user's machine exists", Duration::from_secs(60), || async {
        fake.app_names().first().is_some_and(|app| !fake.machines(app).is_empty())
    })
    .await;
    let apps = fake.app_names();
    assert_eq!(apps.len(), 1, "{apps:?}");
    let fly_app = apps[0].clone();
    assert_eq!(fake.volumes(&fly_app).len(), 1);
    let machines = fake.machines(&fly_app);
    assert_eq!(machines.len(), 1);
    assert_eq!(machines[0]["config"]["metadata"]["user_id"], user_id.as_str());
    let env = machines[0]["config"]["env"].clone();
    assert_eq!(env["ROOST_LLM_BASE_URL"], app.url("/llm/openai/v1").as_str(), "the machine calls Roost's proxy");
    let secrets = fake.secrets(&fly_app).0;
    let secret = &app.state.secret;
    assert_eq!(secrets["ROOST_AGENT_SECRET"], gateway::agent_credentials::agent_secret(secret, &user));
    assert_eq!(secrets["OPENCLAW_GATEWAY_TOKEN"], gateway::agent_credentials::gateway_token(secret, &user));
    assert_eq!(secrets["ROOST_LLM_CREDENTIAL"], gateway::agent_credentials::llm_credential(secret, &user));

    // The machine boots: its sidecar, from what Fly handed it, behind the address Roost dials.
    let volume = tempfile::tempdir().unwrap();
    let (mut sidecar, port) = spawn_sidecar(&bin, &runtime, &env, &secrets, volume.path());
    *target.lock().unwrap() = Some(([127, 0, 0, 1], port).into());

    let stages = ws.stages_until_ready().await;
    let wanted = ["creating_app", "creating_volume", "creating_machine", "starting", "waiting_ready"];
    assert!(wanted.iter().all(|w| stages.iter().any(|s| s == w)), "{stages:?}");
    ws.wait = Duration::from_secs(120);
    let first = reply(&mut ws, "main", "hello from fly").await;
    eprintln!("e2e fly: sign-up to first answer took {:.1} s", signed_up.elapsed().as_secs_f64());
    assert!(first.starts_with(REPLY_PREFIX), "{first}");
    assert!(first.contains("hello from fly"), "{first}");
    let calls = llm.requests().into_iter().filter(|r| r.path.ends_with("/chat/completions")).count();
    assert!(calls >= 1, "the agent's model call reached the upstream through Roost");
    drop(ws);

    // Idle: Roost stops the machine through the API (the sidecar process stays up, see above).
    let state = format!("SELECT state FROM machines WHERE user_id = '{user_id}'");
    wait_until_within("the idle machine is stopped", Duration::from_secs(90), || async {
        fake.machines(&fly_app)[0]["state"] == "stopped"
            && matches!(&app.sql(&state).await[0], libsql::Value::Text(t) if t == "idle_stopped")
    })
    .await;
    let starts = fake.calls(Op::MachineStart);

    // A new chat wakes it: started again through the API, nothing new created, and it answers.
    let woke = Instant::now();
    let mut ws = app.ws(&cookie, "").await;
    ws.wait = READY_WAIT;
    let stages = ws.stages_until_ready().await;
    assert!(stages.iter().any(|s| s == "starting"), "{stages:?}");
    assert!(!stages.iter().any(|s| s == "creating_machine"), "a wake makes nothing new: {stages:?}");
    assert!(fake.calls(Op::MachineStart) > starts, "the wake started the machine");
    assert_eq!(fake.calls(Op::MachineCreate), 1);
    wait_until("the machine runs again", || async { fake.machines(&fly_app)[0]["state"] == "started" }).await;
    ws.wait = Duration::from_secs(120);
    let second = reply(&mut ws, "main", "and after the nap").await;
    eprintln!("e2e fly: idle-stopped machine woke and answered in {:.1} s", woke.elapsed().as_secs_f64());
    assert!(second.starts_with(REPLY_PREFIX) && second.contains("and after the nap"), "{second}");
    drop(ws);

    // Deleting the account deletes the Fly app (its volume and machine with it).
    let res = app.send_as(&cookie, reqwest::Method::DELETE, "/api/me", Some(&json!({ "password": PASSWORD }))).await;
    assert_eq!(res.status(), 204);
    wait_until("the user's Fly app is deleted", || async { fake.app(&fly_app).is_none() }).await;
    assert!(fake.app_names().is_empty(), "{:?}", fake.app_names());

    assert!(sidecar.try_wait().unwrap().is_none(), "the sidecar ran throughout");
    // SAFETY: kill(2) on the roost-agent this test spawned; it stops OpenClaw before it exits.
    unsafe { libc::kill(sidecar.id().unwrap() as i32, libc::SIGTERM) };
    let stopped = tokio::time::timeout(Duration::from_secs(60), sidecar.wait()).await.expect("roost-agent stops");
    assert!(stopped.unwrap().success());
}
