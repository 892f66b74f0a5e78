//! `--agent-provider fake`: each user's "agent" is an in-process [`SimulatedAgent`] that speaks
//! the real protocol. For trying the UI without installing OpenClaw, the tests and the bench.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use provisioner::{AgentSpec, Machine, MachineState, Progress, Provider, ProvisionError, Stage};
use tokio::sync::Mutex;

use super::{Channels, Options, Reply, SimulatedAgent, Transcripts};

pub struct SimulatedProvider {
    agents: Mutex<HashMap<String, Arc<SimulatedAgent>>>,
    /// Each user's chats outlive their agent's stop, until the agent is destroyed.
    transcripts: Mutex<HashMap<String, Transcripts>>,
    /// Each user's connected chat channels, also kept across stops.
    channels: Mutex<HashMap<String, Channels>>,
    reply: Reply,
    /// Agents echo every frame back as a `chat` event (benchmarks).
    echo: bool,
    /// Every user's agent is this running upstream (benchmarks); nothing is spawned.
    external: Option<String>,
    /// With `external`: users whose agent was stopped, until it is started again.
    stopped_external: Mutex<HashSet<String>>,
    /// Time spent in each simulated stage, so waiting UIs show real stage changes.
    stage_delay_ms: std::sync::atomic::AtomicU64,
    /// Users whose agent [`SimulatedProvider::fail`] made fail, until a stop or a start.
    failed: Mutex<HashSet<String>>,
    /// Receives stages that happen outside a start (a simulated failure), like the local
    /// provider's `background`.
    background: Option<Arc<dyn Progress>>,
    /// Each user's state dir (transcripts written as session files at a backup, and workspace
    /// files), in a temporary dir of this provider's own, removed with it.
    state_root: std::path::PathBuf,
}

impl Drop for SimulatedProvider {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.state_root);
    }
}

impl SimulatedProvider {
    pub fn new(reply: Reply, stage_delay: Duration) -> Self {
        Self {
            agents: Mutex::new(HashMap::new()),
            transcripts: Mutex::new(HashMap::new()),
            channels: Mutex::new(HashMap::new()),
            reply,
            stage_delay_ms: std::sync::atomic::AtomicU64::new(stage_delay.as_millis() as u64),
            echo: false,
            external: None,
            stopped_external: Mutex::new(HashSet::new()),
            failed: Mutex::new(HashSet::new()),
            background: None,
            state_root: unique_state_root(),
        }
    }

    /// The simulated agent's state dir (OpenClaw's layout: `workspace/`, `agents/…`), created
    /// on first use; tests put workspace files here.
    pub fn state_dir(&self, user_id: &str) -> std::path::PathBuf {
        self.state_root.join(user_id)
    }

    /// Connects or disconnects a chat channel (`telegram`, `discord`) on the user's agent, as
    /// its `channels.status` then reports it.
    pub async fn set_channel(&self, user_id: &str, channel: &str, connected: bool) {
        self.channels.lock().await.entry(user_id.to_string()).or_default().set(channel, connected);
    }

    /// Makes the user's agent answer `channels.status` with `UNAVAILABLE` (as OpenClaw does
    /// while restarting its gateway), or answer it again.
    pub async fn set_channels_unavailable(&self, user_id: &str, unavailable: bool) {
        self.channels.lock().await.entry(user_id.to_string()).or_default().set_unavailable(unavailable);
    }

    /// How long each simulated stage takes from now on: a slow start shows what a waiting page
    /// says (tests, demos).
    pub fn set_stage_delay(&self, delay: Duration) {
        self.stage_delay_ms.store(delay.as_millis() as u64, std::sync::atomic::Ordering::Relaxed);
    }

    fn stage_delay(&self) -> Duration {
        Duration::from_millis(self.stage_delay_ms.load(std::sync::atomic::Ordering::Relaxed))
    }

    /// Where stages outside a start are reported.
    pub fn reporting_to(mut self, background: Arc<dyn Progress>) -> Self {
        self.background = Some(background);
        self
    }

    /// Ends the user's agent as a crash loop would: `failed`, with `reason`, until it is stopped
    /// or started again (for trying the failed page and its Restart, and for tests).
    pub async fn fail(&self, user_id: &str, reason: &str) {
        if let Some(agent) = self.agents.lock().await.remove(user_id) {
            agent.shutdown();
        }
        self.failed.lock().await.insert(user_id.to_string());
        if let Some(background) = &self.background {
            background.report(user_id, Stage::Failed, reason);
        }
    }

    /// Agents echo every frame back as a `chat` event instead of chatting.
    pub fn echoing(mut self, echo: bool) -> Self {
        self.echo = echo;
        self
    }

    /// Every user's agent is the already running upstream at `url` (any user's token is accepted there).
    pub fn external(mut self, url: Option<String>) -> Self {
        self.external = url;
        self
    }

    /// The running simulated agent of a user.
    pub async fn agent(&self, user_id: &str) -> Option<Arc<SimulatedAgent>> {
        self.agents.lock().await.get(user_id).cloned()
    }

    /// Whether anything is kept for the user (their transcripts), running or not.
    pub async fn keeps_state_for(&self, user_id: &str) -> bool {
        self.transcripts.lock().await.contains_key(user_id)
    }
}

#[async_trait]
impl Provider for SimulatedProvider {
    fn name(&self) -> &'static str {
        "fake"
    }

    async fn ensure(&self, spec: &AgentSpec, progress: &dyn Progress) -> Result<(), ProvisionError> {
        progress.report(&spec.user_id, Stage::PreparingState, "preparing the simulated agent");
        tokio::time::sleep(self.stage_delay()).await;
        Ok(())
    }

    async fn start(&self, spec: &AgentSpec, progress: &dyn Progress) -> Result<Machine, ProvisionError> {
        if let Some(url) = &self.external {
            self.stopped_external.lock().await.remove(&spec.user_id);
            return Ok(Machine { address: url.clone(), external_id: "external".into() });
        }
        if let Some(agent) = self.agents.lock().await.get(&spec.user_id) {
            return Ok(Machine { address: agent.ws_url(), external_id: agent.addr().port().to_string() });
        }
        self.ensure(spec, progress).await?;
        self.failed.lock().await.remove(&spec.user_id);
        progress.report(&spec.user_id, Stage::Starting, "starting the simulated agent");
        let transcripts = self.transcripts.lock().await.entry(spec.user_id.clone()).or_default().clone();
        let channels = self.channels.lock().await.entry(spec.user_id.clone()).or_default().clone();
        let agent = SimulatedAgent::spawn(Options {
            token: spec.gateway_token.clone(),
            reply: self.reply.clone(),
            echo: self.echo,
            transcripts,
            channels,
            ..Options::default()
        })
        .await?;
        progress.report(&spec.user_id, Stage::WaitingReady, "waiting for the simulated agent");
        tokio::time::sleep(self.stage_delay()).await;
        let machine = Machine { address: agent.ws_url(), external_id: agent.addr().port().to_string() };
        self.agents.lock().await.insert(spec.user_id.clone(), Arc::new(agent));
        progress.report(&spec.user_id, Stage::Ready, "the agent is ready");
        Ok(machine)
    }

    async fn stop(&self, user_id: &str) -> Result<(), ProvisionError> {
        self.failed.lock().await.remove(user_id);
        if self.external.is_some() {
            self.stopped_external.lock().await.insert(user_id.to_string());
        }
        if let Some(agent) = self.agents.lock().await.remove(user_id) {
            agent.shutdown();
        }
        Ok(())
    }

    async fn status(&self, user_id: &str) -> MachineState {
        if self.external.is_some() {
            let stopped = self.stopped_external.lock().await.contains(user_id);
            return if stopped { MachineState::IdleStopped } else { MachineState::Ready };
        }
        if self.failed.lock().await.contains(user_id) {
            return MachineState::Failed;
        }
        if self.agents.lock().await.contains_key(user_id) { MachineState::Ready } else { MachineState::IdleStopped }
    }

    async fn address(&self, user_id: &str) -> Option<String> {
        if let Some(url) = &self.external {
            let stopped = self.stopped_external.lock().await.contains(user_id);
            return (!stopped).then(|| url.clone());
        }
        self.agents.lock().await.get(user_id).map(|a| a.ws_url())
    }

    async fn export(&self, user_id: &str) -> Result<provisioner::backup::ArchiveChunks, ProvisionError> {
        let transcripts = self.transcripts.lock().await.entry(user_id.to_string()).or_default().clone();
        let state = self.state_dir(user_id);
        let written = state.clone();
        tokio::task::spawn_blocking(move || {
            std::fs::create_dir_all(&written)?;
            super::backup::write_sessions(&written, &transcripts)
        })
        .await
        .map_err(|e| ProvisionError::Start(format!("writing the simulated sessions stopped: {e}")))??;
        let versions = provisioner::archive::Versions { roost: env!("CARGO_PKG_VERSION").to_string(), openclaw: None };
        Ok(provisioner::backup::stream(state, self.state_root.clone(), versions))
    }

    async fn import(
        &self,
        user_id: &str,
        archive: std::fs::File,
    ) -> Result<provisioner::archive::Restored, ProvisionError> {
        self.stop(user_id).await?;
        let state = self.state_dir(user_id);
        tokio::fs::create_dir_all(&state).await?;
        let manifest = provisioner::backup::restore(archive, state.clone()).await?;
        let transcripts = self.transcripts.lock().await.entry(user_id.to_string()).or_default().clone();
        tokio::task::spawn_blocking(move || super::backup::read_sessions(&state, &transcripts))
            .await
            .map_err(|e| ProvisionError::Start(format!("reading the simulated sessions stopped: {e}")))??;
        Ok(manifest.summary())
    }

    async fn destroy(&self, user_id: &str) -> Result<(), ProvisionError> {
        self.stop(user_id).await?;
        self.stopped_external.lock().await.remove(user_id);
        let _ = tokio::fs::remove_dir_all(self.state_dir(user_id)).await;
        self.transcripts.lock().await.remove(user_id);
        self.channels.lock().await.remove(user_id);
        Ok(())
    }

    async fn shutdown(&self) {
        for (_, agent) in self.agents.lock().await.drain() {
            agent.shutdown();
        }
    }
}

/// A fresh directory name per provider (several run in one test process).
fn unique_state_root() -> std::path::PathBuf {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    std::env::temp_dir().join(format!("roost-simulated-{}-{n}", std::process::id()))
}
