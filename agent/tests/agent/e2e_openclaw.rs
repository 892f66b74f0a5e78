//! The sidecar binary in front of the real OpenClaw (the pinned Node + OpenClaw runtime the
//! gateway's e2e tests use, in `target/agent-runtime`), in a temp dir standing in for the volume:
//! the image's logic without Docker.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use provisioner::local::{Installer, Runtime};
use provisioner::{Progress, Stage};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::process::{Child, Command};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

use crate::{SECRET, free_port};

const GATEWAY_TOKEN: &str = "gateway-token-0123456789abcdef";
const READY_WAIT: Duration = Duration::from_secs(300);

fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

struct Quiet;
impl Progress for Quiet {
    fn report(&self, _: &str, _: Stage, _: &str) {}
}

/// The runtime, installed with npm if it is not there yet; `None` (skip) only outside CI.
async fn runtime() -> Option<Runtime> {
    let installer = Installer::new(repo_root().join("target/agent-runtime"), None, None);
    if let Ok(runtime) = installer.resolved().await {
        return Some(runtime);
    }
    let npm = std::process::Command::new("npm").arg("--version").output().is_ok_and(|o| o.status.success());
    if !npm {
        assert!(std::env::var("CI").map_or(true, |v| v != "true"), "e2e tests need npm in CI");
        eprintln!("SKIPPED e2e: npm is not installed");
        return None;
    }
    installer.ensure("e2e", &Quiet).await.expect("the runtime installs");
    Some(installer.resolved().await.expect("the runtime is installed"))
}

struct Agent {
    child: Child,
    addr: String,
    openclaw_port: u16,
    state: PathBuf,
}

fn spawn_agent(runtime: &Runtime, dir: &Path) -> Agent {
    let (port, openclaw_port) = (free_port(), free_port());
    let state = dir.join("openclaw");
    let child = Command::new(env!("CARGO_BIN_EXE_roost-agent"))
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("ROOST_AGENT_LISTEN", format!("127.0.0.1:{port}"))
        .env("ROOST_AGENT_OPENCLAW_PORT", openclaw_port.to_string())
        .env("ROOST_AGENT_STATE_DIR", &state)
        .env("ROOST_AGENT_HOME", dir.join("home"))
        .env("ROOST_AGENT_TMP_DIR", dir.join("tmp"))
        .env("ROOST_AGENT_NODE", &runtime.node)
        .env("ROOST_AGENT_OPENCLAW", &runtime.openclaw)
        .env("ROOST_AGENT_HEAP_MB", "1024")
        .env("ROOST_AGENT_OPENCLAW_LOG_FILE", dir.join("openclaw.log"))
        .env("ROOST_AGENT_SECRET", SECRET)
        .env("OPENCLAW_GATEWAY_TOKEN", GATEWAY_TOKEN)
        // Nothing listens there: readiness does not need the model.
        .env("ROOST_LLM_BASE_URL", format!("http://127.0.0.1:{}/v1", free_port()))
        .env("ROOST_LLM_API", "openai-completions")
        .env("ROOST_LLM_MODEL", "fake-model")
        .env("ROOST_LLM_CREDENTIAL", "rak_e2e.credential")
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("roost-agent starts");
    Agent { child, addr: format!("127.0.0.1:{port}"), openclaw_port, state }
}

/// One raw HTTP/1.1 request; the status code and body.
async fn http(addr: &str, path: &str, secret: Option<&str>) -> Option<(u16, String)> {
    let mut stream = TcpStream::connect(addr).await.ok()?;
    let secret = secret.map(|s| format!("x-roost-agent-secret: {s}\r\n")).unwrap_or_default();
    let request = format!("GET {path} HTTP/1.1\r\nhost: {addr}\r\nconnection: close\r\n{secret}\r\n");
    stream.write_all(request.as_bytes()).await.ok()?;
    let mut got = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut got)).await.ok()?.ok()?;
    let text = String::from_utf8_lossy(&got).into_owned();
    let status = text.get(9..12)?.parse().ok()?;
    let body = text.split_once("\r\n\r\n").map(|(_, b)| b.to_string()).unwrap_or_default();
    Some((status, body))
}

/// Polls `/roost/ready` until 200; returns the not-ready stages seen on the way.
async fn wait_ready(agent: &mut Agent) -> Vec<String> {
    let started = Instant::now();
    let mut stages = Vec::new();
    loop {
        assert!(agent.child.try_wait().unwrap().is_none(), "roost-agent exited");
        match http(&agent.addr, "/roost/ready", Some(SECRET)).await {
            Some((200, _)) => return stages,
            Some((503, body)) => {
                let body: Value = serde_json::from_str(&body).expect("a JSON readiness answer");
                let stage = body["stage"].as_str().expect("a stage").to_string();
                if stages.last() != Some(&stage) {
                    stages.push(stage);
                }
            }
            other => assert!(other.is_none(), "unexpected readiness answer {other:?}"),
        }
        assert!(started.elapsed() < READY_WAIT, "not ready after {READY_WAIT:?}; stages {stages:?}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// The first frame OpenClaw sends on a WebSocket through the sidecar.
async fn first_frame(addr: &str, secret: &str) -> Result<Value, String> {
    let mut request = format!("ws://{addr}/").into_client_request().unwrap();
    request.headers_mut().insert("x-roost-agent-secret", secret.parse().unwrap());
    let (mut socket, _) = tokio_tungstenite::connect_async(request).await.map_err(|e| e.to_string())?;
    let frame = tokio::time::timeout(Duration::from_secs(15), socket.next())
        .await
        .map_err(|_| "no frame".to_string())?
        .ok_or("closed")?
        .map_err(|e| e.to_string())?;
    serde_json::from_str(frame.to_text().map_err(|e| e.to_string())?).map_err(|e| e.to_string())
}

/// OpenClaw's pid: the sidecar's child (OpenClaw renames its process, so not by command line).
fn openclaw_pid(sidecar: u32) -> Option<i32> {
    std::fs::read_dir("/proc").ok()?.flatten().find_map(|entry| {
        let pid: i32 = entry.file_name().to_str()?.parse().ok()?;
        let stat = std::fs::read_to_string(entry.path().join("stat")).ok()?;
        // `pid (comm) state ppid …`; comm may hold spaces, so split after its `)`.
        let ppid: u32 = stat.rsplit_once(')')?.1.split_whitespace().nth(1)?.parse().ok()?;
        (ppid == sidecar).then_some(pid)
    })
}

/// Processes whose environment names this agent's state dir (OpenClaw and its helpers).
fn processes_of(state: &Path) -> Vec<i32> {
    let needle = format!("OPENCLAW_STATE_DIR={}", state.display());
    let Ok(entries) = std::fs::read_dir("/proc") else { return Vec::new() };
    entries
        .flatten()
        .filter_map(|entry| {
            let pid: i32 = entry.file_name().to_str()?.parse().ok()?;
            let environ = std::fs::read(entry.path().join("environ")).ok()?;
            environ.split(|b| *b == 0).any(|v| v == needle.as_bytes()).then_some(pid)
        })
        .collect()
}

fn validate(runtime: &Runtime, agent: &Agent, dir: &Path) -> std::process::Output {
    std::process::Command::new(&runtime.node)
        .arg(&runtime.openclaw)
        .args(["config", "validate"])
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", dir.join("home"))
        .env("OPENCLAW_STATE_DIR", &agent.state)
        .env("OPENCLAW_CONFIG_PATH", agent.state.join("openclaw.json"))
        .env("ROOST_LLM_CREDENTIAL", "rak_e2e.credential")
        .env("OPENCLAW_GATEWAY_TOKEN", GATEWAY_TOKEN)
        .output()
        .expect("openclaw config validate runs")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn e2e_sidecar_runs_a_real_openclaw_admits_only_roost_and_stops_cleanly() {
    let Some(runtime) = runtime().await else { return };
    let dir = tempfile::tempdir().unwrap();
    // A user key from an earlier boot (OpenClaw's own rewrite), and a platform key it changed.
    let state = dir.path().join("openclaw");
    std::fs::create_dir_all(&state).unwrap();
    std::fs::write(
        state.join("openclaw.json"),
        r#"{"gateway":{"bind":"lan","http":{"endpoints":{"chatCompletions":{"enabled":true}}}}}"#,
    )
    .unwrap();
    let mut agent = spawn_agent(&runtime, dir.path());

    let stages = wait_ready(&mut agent).await;
    assert!(!stages.is_empty() && stages.iter().all(|s| s.contains("OpenClaw")), "{stages:?}");
    let config: Value = serde_json::from_slice(&std::fs::read(agent.state.join("openclaw.json")).unwrap()).unwrap();
    assert_eq!(config["gateway"]["bind"], "loopback");
    assert_eq!(config["gateway"]["port"], agent.openclaw_port);
    assert_eq!(config["gateway"]["http"]["endpoints"]["chatCompletions"]["enabled"], true, "the user key survived");
    let text = config.to_string();
    assert!(!text.contains(SECRET) && !text.contains(GATEWAY_TOKEN) && !text.contains("rak_e2e"), "{text}");
    let validated = validate(&runtime, &agent, dir.path());
    assert!(
        validated.status.success(),
        "openclaw config validate: {}{}",
        String::from_utf8_lossy(&validated.stdout),
        String::from_utf8_lossy(&validated.stderr)
    );

    // OpenClaw listens on loopback only; the sidecar is the way in, and only with the secret.
    let frame = first_frame(&agent.addr, SECRET).await.expect("a WebSocket through the sidecar");
    assert_eq!(
        (frame["type"].as_str(), frame["event"].as_str()),
        (Some("event"), Some("connect.challenge")),
        "{frame}"
    );
    assert!(first_frame(&agent.addr, "wrong-secret-0123456789abcdef0123456789").await.unwrap_err().contains("401"));
    assert_eq!(http(&agent.addr, "/readyz", None).await.map(|r| r.0), Some(401));
    assert_eq!(http(&agent.addr, "/roost/ready", Some("nope")).await.map(|r| r.0), Some(401));
    let (status, body) = http(&agent.addr, "/readyz", Some(SECRET)).await.expect("OpenClaw's own readiness");
    assert_eq!(status, 200, "{body}");

    // A crash is followed by a restart, which empties the agent's TMPDIR first.
    let stale = dir.path().join("tmp/stale-from-the-last-boot");
    std::fs::write(&stale, "x").unwrap();
    let sidecar = agent.child.id().unwrap();
    let pid = openclaw_pid(sidecar).expect("OpenClaw's process");
    assert!(!processes_of(&agent.state).is_empty());
    // SAFETY: kill(2) on the OpenClaw process this test started (found by its own state dir).
    unsafe { libc::kill(pid, libc::SIGKILL) };
    let stages = wait_ready(&mut agent).await;
    assert!(stages.iter().any(|s| s.contains("restarting")), "{stages:?}");
    let restarted = openclaw_pid(sidecar).expect("OpenClaw again");
    assert_ne!(restarted, pid);
    assert!(!stale.exists(), "the restart emptied TMPDIR");

    // SIGTERM stops OpenClaw (and its helpers), then the sidecar, with success.
    // SAFETY: kill(2) on the roost-agent this test spawned.
    unsafe { libc::kill(sidecar as i32, libc::SIGTERM) };
    let status = tokio::time::timeout(Duration::from_secs(60), agent.child.wait())
        .await
        .expect("roost-agent stops within its stop timeout")
        .unwrap();
    assert!(status.success(), "{status}");
    let left = processes_of(&agent.state);
    assert!(left.is_empty(), "OpenClaw processes outlived the sidecar: {left:?}");
    assert!(TcpStream::connect(("127.0.0.1", agent.openclaw_port)).await.is_err(), "OpenClaw still listens");
    // Node wrote its compile cache where the next start finds it (the volume, on Fly).
    let cache = dir.path().join("tmp").join(roost_agent::tmp_dir::COMPILE_CACHE);
    let cached = walk_files(&cache);
    assert!(cached > 100, "Node's compile cache holds {cached} files");
}

fn walk_files(dir: &Path) -> usize {
    std::fs::read_dir(dir)
        .map_or(0, |entries| entries.flatten().map(|e| if e.path().is_dir() { walk_files(&e.path()) } else { 1 }).sum())
}
