//! One agent process: spawned in its own process group, supervised (restarted with backoff after
//! a crash), and stopped with SIGTERM then SIGKILL to the whole group.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::process::{Child, Command};
use tokio::sync::Notify;

use super::config::{self, LLM_CREDENTIAL_ENV};
use super::sandbox::{AgentPaths, Policy};
use super::{Launch, Runtime};
use crate::{AgentSpec, Machine, MachineState, Progress, ProvisionError, Stage};

const STOP_GRACE: Duration = Duration::from_secs(8);
const MAX_BACKOFF: Duration = Duration::from_secs(60);
const PID_FILE: &str = "agent.pid";

pub struct Agent {
    spec: AgentSpec,
    dir: PathBuf,
    runtime: Runtime,
    launch: Arc<Launch>,
    port: u16,
    pid: AtomicU32,
    state: Mutex<MachineState>,
    stopping: AtomicBool,
    exited: Notify,
    http: reqwest::Client,
}

impl Agent {
    pub async fn spawn(
        spec: AgentSpec,
        dir: PathBuf,
        runtime: Runtime,
        launch: Arc<Launch>,
        background: Arc<dyn Progress>,
        progress: &dyn Progress,
    ) -> Result<Arc<Self>, ProvisionError> {
        let port = free_port()?;
        let agent = Arc::new(Self {
            spec,
            dir,
            runtime,
            launch,
            port,
            pid: AtomicU32::new(0),
            state: Mutex::new(MachineState::Starting),
            stopping: AtomicBool::new(false),
            exited: Notify::new(),
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(2))
                .no_proxy()
                .build()
                .map_err(|e| ProvisionError::Start(e.to_string()))?,
        });
        progress.report(&agent.spec.user_id, Stage::Starting, "starting the agent process");
        let child = agent.launch().await?;
        tokio::spawn(agent.clone().supervise(child, background));
        Ok(agent)
    }

    pub fn address(&self) -> String {
        format!("ws://127.0.0.1:{}/", self.port)
    }

    pub fn state(&self) -> MachineState {
        *self.state.lock().expect("state lock")
    }

    fn set_state(&self, state: MachineState) {
        *self.state.lock().expect("state lock") = state;
    }

    pub fn is_running(&self) -> bool {
        !self.stopping.load(Ordering::SeqCst) && matches!(self.state(), MachineState::Starting | MachineState::Ready)
    }

    async fn launch(&self) -> Result<Child, ProvisionError> {
        // The config lives in the agent's own state dir: OpenClaw rewrites it (config.patch).
        let config_path = self.dir.join("state/openclaw.json");
        let config = config::render(self.port, &self.spec.llm, &self.dir.join("state/logs/openclaw.log"));
        tokio::fs::write(&config_path, serde_json::to_vec_pretty(&config).expect("json")).await?;
        let policy = Policy::for_agent(
            &self.launch.sandbox,
            &AgentPaths {
                agent_dir: &self.dir,
                users_dir: self.dir.parent().unwrap_or(&self.dir),
                protected: &self.launch.protected,
                runtime: &self.runtime,
            },
            self.port,
        )
        .map_err(|e| ProvisionError::Start(format!("the agent's sandbox cannot be set up: {e}")))?;
        let log = std::fs::OpenOptions::new().create(true).append(true).open(self.dir.join("agent.log"))?;
        let node_dir = self.runtime.node.parent().map(Path::to_path_buf).unwrap_or_default();
        // `roost agent-exec` confines itself with the policy, then execs Node in its place.
        let mut cmd = Command::new(&self.launch.helper);
        cmd.arg("agent-exec")
            .arg(serde_json::to_string(&policy).expect("a policy serialises"))
            .arg("--")
            .arg(&self.runtime.node)
            .arg(&self.runtime.openclaw)
            .args(["gateway", "run"])
            // A clean environment: the agent runs untrusted code and must see no platform secret.
            .env_clear()
            .env("PATH", format!("{}:/usr/local/bin:/usr/bin:/bin", node_dir.display()))
            .env("HOME", self.dir.join("home"))
            .env("TMPDIR", self.dir.join("tmp"))
            .env("LANG", "C.UTF-8")
            .env("OPENCLAW_STATE_DIR", self.dir.join("state"))
            .env("OPENCLAW_CONFIG_PATH", &config_path)
            .env("OPENCLAW_GATEWAY_TOKEN", &self.spec.gateway_token)
            .env(LLM_CREDENTIAL_ENV, &self.spec.llm.credential)
            // OpenClaw raises its children's OOM score by writing /proc/self, which agents may
            // not; the helper raises the whole agent's instead (see `Limits::oom_score_adj`).
            .env("OPENCLAW_CHILD_OOM_SCORE_ADJ", "0")
            .current_dir(self.dir.join("home"))
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .process_group(0)
            .kill_on_drop(true);
        // SAFETY: prctl is async-signal-safe; it only asks the kernel to SIGTERM the agent if
        // Roost dies without stopping it, so agents never outlive the process that owns them.
        unsafe {
            cmd.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM);
                Ok(())
            });
        }
        let child = cmd
            .spawn()
            .map_err(|e| ProvisionError::Start(format!("could not run {}: {e}", self.launch.helper.display())))?;
        let pid = child.id().unwrap_or(0);
        self.pid.store(pid, Ordering::SeqCst);
        tokio::fs::write(self.dir.join(PID_FILE), pid.to_string()).await?;
        Ok(child)
    }

    /// Polls `/readyz` until the agent reports ready, reporting what it is still waiting for.
    pub async fn wait_ready(&self, progress: &dyn Progress, timeout: Duration) -> Result<Machine, ProvisionError> {
        let started = Instant::now();
        let url = format!("http://127.0.0.1:{}/readyz", self.port);
        let mut last_detail = String::new();
        loop {
            if self.stopping.load(Ordering::SeqCst) || self.state() == MachineState::Failed {
                return Err(ProvisionError::Start(format!(
                    "the agent exited; see {}",
                    self.dir.join("agent.log").display()
                )));
            }
            let detail = match self.http.get(&url).send().await {
                Ok(res) => match res.json::<serde_json::Value>().await {
                    Ok(body) if body["ready"] == true => break,
                    Ok(body) => {
                        let failing: Vec<&str> =
                            body["failing"].as_array().into_iter().flatten().filter_map(|v| v.as_str()).collect();
                        format!(
                            "the agent is starting (waiting for: {})",
                            if failing.is_empty() { "startup".to_string() } else { failing.join(", ") }
                        )
                    }
                    Err(_) => "the agent is starting".to_string(),
                },
                Err(_) => "waiting for the agent to listen".to_string(),
            };
            if detail != last_detail {
                progress.report(&self.spec.user_id, Stage::WaitingReady, &detail);
                last_detail = detail;
            }
            if started.elapsed() > timeout {
                return Err(ProvisionError::NotReady(timeout.as_secs()));
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        self.set_state(MachineState::Ready);
        progress.report(&self.spec.user_id, Stage::Ready, "the agent is ready");
        Ok(Machine { address: self.address(), external_id: self.pid.load(Ordering::SeqCst).to_string() })
    }

    /// Waits on the child; unless it was asked to stop, restarts it with exponential backoff.
    async fn supervise(self: Arc<Self>, mut child: Child, progress: Arc<dyn Progress>) {
        let mut backoff = Duration::from_secs(1);
        loop {
            let status = child.wait().await;
            self.exited.notify_waiters();
            if self.stopping.load(Ordering::SeqCst) {
                break;
            }
            let why = status.map(|s| s.to_string()).unwrap_or_else(|e| e.to_string());
            tracing::warn!(user_id = %self.spec.user_id, %why, "agent exited; restarting in {} s", backoff.as_secs());
            self.set_state(MachineState::Starting);
            progress.report(
                &self.spec.user_id,
                Stage::Restarting,
                &format!("the agent stopped ({why}); restarting in {} s", backoff.as_secs()),
            );
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(MAX_BACKOFF);
            if self.stopping.load(Ordering::SeqCst) {
                break;
            }
            match self.launch().await {
                Ok(next) => {
                    child = next;
                    let me = self.clone();
                    let progress = progress.clone();
                    tokio::spawn(async move {
                        if me.wait_ready(progress.as_ref(), Duration::from_secs(180)).await.is_ok() {
                            tracing::info!(user_id = %me.spec.user_id, "agent restarted");
                        }
                    });
                }
                Err(e) => {
                    self.set_state(MachineState::Failed);
                    progress.report(&self.spec.user_id, Stage::Failed, &e.to_string());
                    break;
                }
            }
        }
    }

    /// SIGTERM to the process group, then SIGKILL after a grace period.
    pub async fn stop(&self) {
        self.stopping.store(true, Ordering::SeqCst);
        self.set_state(MachineState::Stopping);
        let pid = self.pid.load(Ordering::SeqCst);
        if pid != 0 {
            let exited = self.exited.notified();
            signal_group(pid, libc::SIGTERM);
            if tokio::time::timeout(STOP_GRACE, exited).await.is_err() {
                signal_group(pid, libc::SIGKILL);
            }
            // Helpers the gateway started may outlive it; the group signal reaches them too.
            signal_group(pid, libc::SIGKILL);
        }
        let _ = tokio::fs::remove_file(self.dir.join(PID_FILE)).await;
        self.set_state(MachineState::IdleStopped);
    }
}

fn signal_group(pid: u32, signal: i32) {
    // SAFETY: kill(2) with a negative pid signals the process group we created with process_group(0).
    unsafe { libc::kill(-(pid as i32), signal) };
}

fn free_port() -> std::io::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// Stops agents whose pid files an earlier run left behind, if the pid still runs OpenClaw.
pub async fn reap_orphans(users_dir: &Path) {
    let Ok(entries) = std::fs::read_dir(users_dir) else { return };
    let mut pids = Vec::new();
    for entry in entries.flatten() {
        let pid_file = entry.path().join(PID_FILE);
        let Some(pid) = std::fs::read_to_string(&pid_file).ok().and_then(|s| s.trim().parse::<u32>().ok()) else {
            continue;
        };
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        if String::from_utf8_lossy(&cmdline).contains("openclaw") {
            tracing::warn!(pid, "stopping an agent left behind by an earlier run");
            signal_group(pid, libc::SIGTERM);
            pids.push(pid);
        }
        let _ = std::fs::remove_file(pid_file);
    }
    let deadline = Instant::now() + STOP_GRACE;
    while !pids.is_empty() && Instant::now() < deadline {
        pids.retain(|pid| Path::new(&format!("/proc/{pid}")).exists());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for pid in pids {
        signal_group(pid, libc::SIGKILL);
    }
}
