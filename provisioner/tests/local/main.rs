//! The `local` provider's process handling, with a small stand-in for the OpenClaw gateway
//! (the real one is exercised end to end by the gateway's tests).

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

mod crash_limit;

use provisioner::local::{CrashLimit, Launch, LocalOptions, LocalProvider, MEMORY_SAMPLE_INTERVAL, Sandbox, Support};
use provisioner::{AgentSpec, LlmEndpoint, MachineState, Progress, Provider, Stage};

#[derive(Default)]
struct Recorder(Mutex<Vec<(String, Stage, String)>>);

impl Progress for Recorder {
    fn report(&self, user_id: &str, stage: Stage, detail: &str) {
        self.0.lock().unwrap().push((user_id.to_string(), stage, detail.to_string()));
    }
}

impl Recorder {
    fn stages(&self) -> Vec<Stage> {
        self.0.lock().unwrap().iter().map(|(_, s, _)| *s).collect()
    }
}

fn node() -> Option<PathBuf> {
    let found = std::process::Command::new("node").arg("--version").output().is_ok_and(|o| o.status.success());
    if !found {
        assert!(std::env::var("CI").map_or(true, |v| v != "true"), "node is required in CI");
        eprintln!("SKIPPED: node is not installed");
    }
    found.then(|| PathBuf::from("node"))
}

fn spec(user: &str) -> AgentSpec {
    AgentSpec {
        user_id: user.into(),
        gateway_token: "gateway-token-secret".into(),
        agent_secret: "agent-secret-unused-by-the-local-provider".into(),
        llm: LlmEndpoint {
            base_url: "http://127.0.0.1:9/llm/openai/v1".into(),
            api: "openai-completions",
            credential: "rak_secret".into(),
            model: "m".into(),
        },
        guest: None,
        suspend: None,
    }
}

async fn provider(dir: &std::path::Path, node: PathBuf, background: Arc<Recorder>) -> LocalProvider {
    provider_with(dir, node, background, |_| {}).await
}

/// A provider whose options `tweak` may change (a small crash limit, frequent memory samples).
async fn provider_with(
    dir: &std::path::Path,
    node: PathBuf,
    background: Arc<Recorder>,
    tweak: impl FnOnce(&mut LocalOptions),
) -> LocalProvider {
    let mut options = LocalOptions {
        data_dir: dir.to_path_buf(),
        runtime_dir: dir.join("runtime"),
        openclaw_bin: Some(PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/local/stand_in_openclaw.mjs"))),
        node_bin: Some(node),
        ready_timeout: Duration::from_secs(20),
        background,
        crash_limit: CrashLimit::DEFAULT,
        memory_sample_interval: MEMORY_SAMPLE_INTERVAL,
    };
    tweak(&mut options);
    LocalProvider::new(
        options,
        Launch {
            helper: PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/local/exec_as_is.sh")),
            sandbox: Sandbox::choose(Support::Missing, true),
            protected: vec![dir.to_path_buf()],
            env: Vec::new(),
        },
    )
    .await
}

fn port_of(address: &str) -> u16 {
    address.trim_start_matches("ws://127.0.0.1:").trim_end_matches('/').parse().unwrap()
}

fn alive(pid: u32) -> bool {
    std::path::Path::new(&format!("/proc/{pid}")).exists()
        && !std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default().contains("State:\tZ")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn starts_reports_stages_and_stops_the_whole_process() {
    let Some(node) = node() else { return };
    let dir = tempfile::tempdir().unwrap();
    let progress = Recorder::default();
    let local = provider(dir.path(), node, Arc::new(Recorder::default())).await;
    let machine = local.start(&spec("u1"), &progress).await.unwrap();
    assert_eq!(local.status("u1").await, MachineState::Ready);
    assert_eq!(local.address("u1").await.as_deref(), Some(machine.address.as_str()));
    let stages = progress.stages();
    for stage in [Stage::PreparingState, Stage::Starting, Stage::WaitingReady, Stage::Ready] {
        assert!(stages.contains(&stage), "{stage:?} missing from {stages:?}");
    }
    let pid: u32 = machine.external_id.parse().unwrap();
    assert!(alive(pid));
    local.stop("u1").await.unwrap();
    assert!(!alive(pid), "the agent process is gone after stop");
    assert_eq!(local.status("u1").await, MachineState::IdleStopped);
    assert_eq!(local.address("u1").await, None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_agent_gets_a_clean_environment_and_a_config_without_secrets() {
    let Some(node) = node() else { return };
    let dir = tempfile::tempdir().unwrap();
    let local = provider(dir.path(), node, Arc::new(Recorder::default())).await;
    local.start(&spec("u2"), &Recorder::default()).await.unwrap();
    let env: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("users/u2/state/env.json")).unwrap()).unwrap();
    let mut names: Vec<&str> = env.as_object().unwrap().keys().map(String::as_str).collect();
    names.sort_unstable();
    assert_eq!(
        names,
        [
            "HOME",
            "LANG",
            "OPENCLAW_CHILD_OOM_SCORE_ADJ",
            "OPENCLAW_CONFIG_PATH",
            "OPENCLAW_GATEWAY_TOKEN",
            "OPENCLAW_STATE_DIR",
            "PATH",
            "ROOST_LLM_CREDENTIAL",
            "TMPDIR"
        ],
        "the agent inherits nothing beyond its own settings and credentials"
    );
    assert_eq!(env["OPENCLAW_GATEWAY_TOKEN"], "gateway-token-secret");
    assert_eq!(env["ROOST_LLM_CREDENTIAL"], "rak_secret");
    let config = std::fs::read_to_string(dir.path().join("users/u2/state/openclaw.json")).unwrap();
    assert!(!config.contains("gateway-token-secret") && !config.contains("rak_secret"), "no secret on disk");
    local.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crashed_agent_is_restarted_with_backoff() {
    let Some(node) = node() else { return };
    let dir = tempfile::tempdir().unwrap();
    let background = Arc::new(Recorder::default());
    let local = provider(dir.path(), node, background.clone()).await;
    let machine = local.start(&spec("u3"), &Recorder::default()).await.unwrap();
    let port = port_of(&machine.address);
    let _ = reqwest::get(format!("http://127.0.0.1:{port}/crash")).await;
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let ready = reqwest::get(format!("http://127.0.0.1:{port}/readyz")).await.is_ok_and(|r| r.status() == 200);
        if ready && local.status("u3").await == MachineState::Ready && background.stages().contains(&Stage::Ready) {
            break;
        }
        assert!(Instant::now() < deadline, "the agent was not restarted; stages {:?}", background.stages());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let restarting = background
        .0
        .lock()
        .unwrap()
        .iter()
        .find(|(_, s, _)| *s == Stage::Restarting)
        .cloned()
        .expect("a restarting stage");
    assert!(restarting.2.contains("restarting in 1 s"), "{}", restarting.2);
    local.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agents_left_behind_by_an_earlier_run_are_stopped_at_start() {
    let Some(node) = node() else { return };
    let dir = tempfile::tempdir().unwrap();
    let first = provider(dir.path(), node.clone(), Arc::new(Recorder::default())).await;
    let machine = first.start(&spec("u4"), &Recorder::default()).await.unwrap();
    let pid: u32 = machine.external_id.parse().unwrap();
    // The first Roost "crashes": its provider is forgotten without stopping anything.
    std::mem::forget(first);
    assert!(alive(pid));
    let second = provider(dir.path(), node, Arc::new(Recorder::default())).await;
    second.reap_leftovers(&["someone-else".to_string()]).await;
    assert!(!alive(pid), "the orphan was stopped");
}

#[tokio::test]
async fn agents_another_instance_runs_are_left_alone_and_a_takeover_ends_them() {
    let Some(node) = node() else { return };
    let dir = tempfile::tempdir().unwrap();
    let first = provider(dir.path(), node.clone(), Arc::new(Recorder::default())).await;
    let machine = first.start(&spec("u5"), &Recorder::default()).await.unwrap();
    let pid: u32 = machine.external_id.parse().unwrap();
    let second = provider(dir.path(), node, Arc::new(Recorder::default())).await;
    second.reap_leftovers(&["u5".to_string()]).await;
    assert!(alive(pid), "the agent the other instance runs is kept");
    // This instance took the user's lease over: its start ends what the other left running.
    let taken_over = second.start(&spec("u5"), &Recorder::default()).await.unwrap();
    assert!(!alive(pid), "the other instance's agent was stopped");
    assert_ne!(taken_over.external_id, machine.external_id);
    second.stop("u5").await.unwrap();
    std::mem::forget(first);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_exit_ends_what_the_agent_left_behind_and_a_stop_after_it_returns_at_once() {
    let Some(node) = node() else { return };
    let dir = tempfile::tempdir().unwrap();
    let background = Arc::new(Recorder::default());
    let local = provider(dir.path(), node, background.clone()).await;
    let machine = local.start(&spec("u5"), &Recorder::default()).await.unwrap();
    let port = port_of(&machine.address);
    let helper: u32 =
        reqwest::get(format!("http://127.0.0.1:{port}/helper")).await.unwrap().text().await.unwrap().parse().unwrap();
    assert!(alive(helper));
    let _ = reqwest::get(format!("http://127.0.0.1:{port}/crash")).await;
    let deadline = Instant::now() + Duration::from_secs(10);
    while !background.stages().contains(&Stage::Restarting) {
        assert!(Instant::now() < deadline, "the exit was noticed");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Signalled with the group; on a busy machine it takes a moment to be gone.
    while alive(helper) {
        assert!(Instant::now() < deadline, "the helper left in the agent's group was ended with it");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // The agent is down (waiting to restart): stopping it has nothing to wait for.
    tokio::time::timeout(Duration::from_secs(4), local.stop("u5"))
        .await
        .expect("stop returns without waiting out the grace period")
        .unwrap();
    assert_eq!(local.status("u5").await, MachineState::IdleStopped);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_start_that_times_out_leaves_no_agent_running() {
    let Some(node) = node() else { return };
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("users/u7/state");
    std::fs::create_dir_all(&state).unwrap();
    std::fs::write(state.join("never-ready"), "").unwrap();
    let local = provider_with(dir.path(), node, Arc::new(Recorder::default()), |o| {
        o.ready_timeout = Duration::from_secs(2);
    })
    .await;
    let result = local.start(&spec("u7"), &Recorder::default()).await;
    assert!(matches!(result, Err(provisioner::ProvisionError::NotReady(2))), "{result:?}");
    let launched: Vec<u32> =
        std::fs::read_to_string(state.join("launches")).unwrap().lines().map(|l| l.parse().unwrap()).collect();
    assert!(!launched.is_empty(), "the agent was launched");
    assert!(launched.iter().all(|pid| !alive(*pid)), "no agent process is left running");
    assert_eq!(local.status("u7").await, MachineState::IdleStopped);
}
