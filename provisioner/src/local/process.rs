//! One agent process: spawned in its own process group, supervised (restarted with backoff after
//! a crash), and stopped with SIGTERM then SIGKILL to the whole group.

use std::collections::VecDeque;
use std::path::PathBuf;
use std::process::ExitStatus;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::Notify;

use super::command::{agent_command, log_tail};
use super::group::ProcessGroup;
use super::orphans::PID_FILE;
use super::{CrashLimit, Launch, Runtime};
use crate::{AgentSpec, Machine, MachineState, Progress, ProvisionError, Stage};

const STOP_GRACE: Duration = Duration::from_secs(8);
const MAX_BACKOFF: Duration = Duration::from_secs(60);
/// A run this long counts as healthy: a crash after it restarts after the shortest backoff.
const HEALTHY_RUN: Duration = Duration::from_secs(300);
/// Lines of the agent's own log written to the server's log when it exits.
const LOG_TAIL_LINES: usize = 5;

pub struct Agent {
    spec: AgentSpec,
    dir: PathBuf,
    runtime: Runtime,
    launch: Arc<Launch>,
    port: u16,
    ready_timeout: Duration,
    crash_limit: CrashLimit,
    group: Mutex<Option<Arc<ProcessGroup>>>,
    state: Mutex<MachineState>,
    /// Why the agent is `Failed`, in words a user may read.
    failure: Mutex<Option<String>>,
    stopping: AtomicBool,
    exited: Notify,
    http: reqwest::Client,
    /// The last sample of the process group's resident memory; 0 before the first.
    memory: AtomicU64,
}

pub struct AgentLaunch {
    pub spec: AgentSpec,
    pub dir: PathBuf,
    pub runtime: Runtime,
    pub launch: Arc<Launch>,
    pub ready_timeout: Duration,
    pub crash_limit: CrashLimit,
}

impl Agent {
    pub async fn spawn(
        how: AgentLaunch,
        background: Arc<dyn Progress>,
        progress: &dyn Progress,
    ) -> Result<Arc<Self>, ProvisionError> {
        let port = free_port()?;
        let agent = Arc::new(Self {
            spec: how.spec,
            dir: how.dir,
            runtime: how.runtime,
            launch: how.launch,
            port,
            ready_timeout: how.ready_timeout,
            crash_limit: how.crash_limit,
            group: Mutex::new(None),
            state: Mutex::new(MachineState::Starting),
            failure: Mutex::new(None),
            stopping: AtomicBool::new(false),
            exited: Notify::new(),
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(2))
                .no_proxy()
                .build()
                .map_err(|e| ProvisionError::Start(e.to_string()))?,
            memory: AtomicU64::new(0),
        });
        progress.report(&agent.spec.user_id, Stage::Starting, "starting the agent process");
        let group = agent.launch().await?;
        tokio::spawn(agent.clone().supervise(group, background));
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

    fn current_group(&self) -> Option<Arc<ProcessGroup>> {
        self.group.lock().expect("group lock").clone()
    }

    pub fn is_running(&self) -> bool {
        !self.stopping.load(Ordering::SeqCst) && matches!(self.state(), MachineState::Starting | MachineState::Ready)
    }

    /// The leader of the agent's current process group, while it runs.
    pub fn leader_pid(&self) -> Option<u32> {
        if !self.is_running() {
            return None;
        }
        self.current_group().map(|g| g.pid())
    }

    pub fn record_memory(&self, bytes: u64) {
        self.memory.store(bytes, Ordering::Relaxed);
    }

    /// The last memory sample, while the agent runs.
    pub fn memory_bytes(&self) -> Option<u64> {
        let bytes = self.memory.load(Ordering::Relaxed);
        (self.is_running() && bytes > 0).then_some(bytes)
    }

    async fn launch(&self) -> Result<Arc<ProcessGroup>, ProvisionError> {
        let mut cmd = agent_command(&self.spec, &self.dir, &self.runtime, &self.launch, self.port).await?;
        let group = Arc::new(
            ProcessGroup::spawn(&mut cmd)
                .map_err(|e| ProvisionError::Start(format!("could not run {}: {e}", self.launch.helper.display())))?,
        );
        *self.group.lock().expect("group lock") = Some(group.clone());
        tokio::fs::write(self.dir.join(PID_FILE), group.pid().to_string()).await?;
        Ok(group)
    }

    /// Polls `/readyz` until the agent reports ready, reporting what it is still waiting for.
    pub async fn wait_ready(&self, progress: &dyn Progress, timeout: Duration) -> Result<Machine, ProvisionError> {
        let started = Instant::now();
        let url = format!("http://127.0.0.1:{}/readyz", self.port);
        let mut last_detail = String::new();
        loop {
            if self.stopping.load(Ordering::SeqCst) {
                return Err(ProvisionError::Exited(log_tail(&self.dir, LOG_TAIL_LINES)));
            }
            if self.state() == MachineState::Failed {
                let reason = self.failure.lock().expect("failure lock").clone();
                return Err(ProvisionError::CrashLoop(reason.unwrap_or_default()));
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
        let pid = self.current_group().map(|g| g.pid()).unwrap_or_default();
        Ok(Machine { address: self.address(), external_id: pid.to_string() })
    }

    /// Waits on the agent; unless it was asked to stop, restarts it with exponential backoff
    /// (reset after a healthy run), until it crashes `crash_limit` times within its window.
    async fn supervise(self: Arc<Self>, mut group: Arc<ProcessGroup>, progress: Arc<dyn Progress>) {
        let mut backoff = Duration::from_secs(1);
        let mut crashes = CrashWindow::new(self.crash_limit);
        loop {
            let launched = Instant::now();
            let status = group.wait().await;
            self.exited.notify_waiters();
            if self.stopping.load(Ordering::SeqCst) {
                break;
            }
            if launched.elapsed() >= HEALTHY_RUN {
                backoff = Duration::from_secs(1);
            }
            let why = status.as_ref().map(describe_exit).unwrap_or_else(|e| e.to_string());
            let log = log_tail(&self.dir, LOG_TAIL_LINES);
            if crashes.crashed(Instant::now()) {
                let reason = crash_loop_reason(self.crash_limit, &why);
                tracing::warn!(user_id = %self.spec.user_id, %why, %log, "agent crash loop; not restarting it");
                *self.failure.lock().expect("failure lock") = Some(reason.clone());
                self.set_state(MachineState::Failed);
                let _ = tokio::fs::remove_file(self.dir.join(PID_FILE)).await;
                progress.report(&self.spec.user_id, Stage::Failed, &reason);
                break;
            }
            tracing::warn!(
                user_id = %self.spec.user_id,
                %why,
                %log,
                "agent exited; restarting in {} s",
                backoff.as_secs()
            );
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
                    group = next;
                    let me = self.clone();
                    let progress = progress.clone();
                    tokio::spawn(async move {
                        if me.wait_ready(progress.as_ref(), me.ready_timeout).await.is_ok() {
                            tracing::info!(user_id = %me.spec.user_id, "agent restarted");
                        }
                    });
                }
                Err(e) => {
                    tracing::warn!(user_id = %self.spec.user_id, error = %e, "the agent could not be restarted");
                    self.set_state(MachineState::Failed);
                    progress.report(&self.spec.user_id, Stage::Failed, &e.public_message());
                    break;
                }
            }
        }
    }

    /// SIGTERM to the process group, then SIGKILL after a grace period. Returns at once when
    /// the agent already exited.
    pub async fn stop(&self) {
        self.stopping.store(true, Ordering::SeqCst);
        self.set_state(MachineState::Stopping);
        if let Some(group) = self.current_group() {
            let exited = self.exited.notified();
            if group.signal(libc::SIGTERM) && tokio::time::timeout(STOP_GRACE, exited).await.is_err() {
                group.signal(libc::SIGKILL);
            }
        }
        let _ = tokio::fs::remove_file(self.dir.join(PID_FILE)).await;
        self.set_state(MachineState::IdleStopped);
    }
}

fn free_port() -> std::io::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// The crashes of the last `window`, at most `crashes` of them.
struct CrashWindow {
    limit: CrashLimit,
    recent: VecDeque<Instant>,
}

impl CrashWindow {
    fn new(limit: CrashLimit) -> Self {
        // The limit is an operator's flag: grow with real crashes, never allocate it up front.
        Self { limit, recent: VecDeque::with_capacity(limit.crashes.min(16) as usize) }
    }

    /// Records a crash at `now`; true when it is the limit's worth within the window.
    fn crashed(&mut self, now: Instant) -> bool {
        while self.recent.front().is_some_and(|&at| now.duration_since(at) >= self.limit.window) {
            self.recent.pop_front();
        }
        self.recent.push_back(now);
        if self.recent.len() > self.limit.crashes as usize {
            self.recent.pop_front();
        }
        self.recent.len() >= self.limit.crashes as usize
    }
}

/// "exit code 3", "killed by SIGKILL": how an agent ended, in words.
fn describe_exit(status: &ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    if let Some(code) = status.code() {
        return format!("exit code {code}");
    }
    let Some(signal) = status.signal() else { return "an unknown exit".into() };
    let name = match signal {
        libc::SIGHUP => "SIGHUP",
        libc::SIGINT => "SIGINT",
        libc::SIGQUIT => "SIGQUIT",
        libc::SIGILL => "SIGILL",
        libc::SIGTRAP => "SIGTRAP",
        // Node aborts like this when its heap is full (`--max-old-space-size`).
        libc::SIGABRT => "SIGABRT",
        libc::SIGBUS => "SIGBUS",
        libc::SIGFPE => "SIGFPE",
        // The kernel's out-of-memory killer, among others.
        libc::SIGKILL => "SIGKILL",
        libc::SIGSEGV => "SIGSEGV",
        libc::SIGPIPE => "SIGPIPE",
        libc::SIGTERM => "SIGTERM",
        _ => return format!("killed by signal {signal}"),
    };
    format!("killed by {name}")
}

/// What the user is told when the crash limit ends the restarts, with the configured numbers.
fn crash_loop_reason(limit: CrashLimit, why: &str) -> String {
    let times = match limit.crashes {
        1 => "once".to_string(),
        n => format!("{n} times"),
    };
    format!("your agent crashed {times} in {} (last: {why}); it was stopped", describe_window(limit.window))
}

/// "10 minutes", "1 minute", "45 seconds".
fn describe_window(window: Duration) -> String {
    let secs = window.as_secs();
    let (n, unit) = if secs >= 60 && secs.is_multiple_of(60) { (secs / 60, "minute") } else { (secs, "second") };
    format!("{n} {unit}{}", if n == 1 { "" } else { "s" })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_crashes_within_the_window_count() {
        let limit = CrashLimit { crashes: 3, window: Duration::from_secs(60) };
        let mut window = CrashWindow::new(limit);
        let t0 = Instant::now();
        assert!(!window.crashed(t0));
        assert!(!window.crashed(t0 + Duration::from_secs(30)));
        // The first crash has left the window: two in the last minute.
        assert!(!window.crashed(t0 + Duration::from_secs(61)));
        assert!(window.crashed(t0 + Duration::from_secs(62)));
    }

    #[test]
    fn exits_and_windows_read_as_words() {
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(describe_exit(&ExitStatus::from_raw(3 << 8)), "exit code 3");
        assert_eq!(describe_exit(&ExitStatus::from_raw(libc::SIGKILL)), "killed by SIGKILL");
        assert_eq!(
            crash_loop_reason(CrashLimit::DEFAULT, "exit code 1"),
            "your agent crashed 5 times in 10 minutes (last: exit code 1); it was stopped"
        );
        let configured = CrashLimit { crashes: 3, window: Duration::from_secs(90) };
        assert_eq!(
            crash_loop_reason(configured, "killed by SIGKILL"),
            "your agent crashed 3 times in 90 seconds (last: killed by SIGKILL); it was stopped"
        );
        let once = CrashLimit { crashes: 1, window: Duration::from_secs(3600) };
        assert_eq!(
            crash_loop_reason(once, "exit code 2"),
            "your agent crashed once in 60 minutes (last: exit code 2); it was stopped"
        );
        assert_eq!(describe_window(Duration::from_secs(600)), "10 minutes");
        assert_eq!(describe_window(Duration::from_secs(60)), "1 minute");
        assert_eq!(describe_window(Duration::from_secs(45)), "45 seconds");
    }
}
