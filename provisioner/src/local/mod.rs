//! The embedded default: each user's agent is an OpenClaw gateway process on loopback, with its
//! own port and state dir under `<data-dir>/users/<id>/`.

mod command;
mod config;
mod group;
mod memory;
mod orphans;
mod process;
mod runtime;
pub mod sandbox;

pub use sandbox::{Sandbox, Support};

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::{Arc, Weak};
use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::Mutex;

pub use command::NODE_HEAP_LIMIT_MB;
pub use runtime::{DISCORD_PLUGIN, DISCORD_PLUGIN_VERSION, Installer, NODE_VERSION, OPENCLAW_VERSION, Runtime};

use crate::files::{self, ByteStream, Download, FileError, Listing, Workspace, WorkspacePath};
use crate::{AgentSpec, Machine, MachineState, Progress, Provider, ProvisionError, Stage};
use process::{Agent, AgentLaunch};

pub struct LocalOptions {
    /// Per-user state lives in `<data_dir>/users/<user id>/`.
    pub data_dir: PathBuf,
    /// Where Node 24 and OpenClaw are installed on first use.
    pub runtime_dir: PathBuf,
    /// An existing OpenClaw entry script (`openclaw.mjs`) to use instead of installing one.
    pub openclaw_bin: Option<PathBuf>,
    /// The Node 24 binary to run `openclaw_bin` with (default: the runtime's, else `node`).
    pub node_bin: Option<PathBuf>,
    /// How long a start may take before it counts as failed.
    pub ready_timeout: Duration,
    /// Receives the stages of restarts that happen in the background (after a crash).
    pub background: Arc<dyn Progress>,
    /// When a crashing agent stops being restarted ([`CrashLimit::DEFAULT`]).
    pub crash_limit: CrashLimit,
    /// How often running agents' memory is sampled ([`MEMORY_SAMPLE_INTERVAL`]).
    pub memory_sample_interval: Duration,
}

/// An agent that crashes `crashes` times within `window` is not restarted again: it is
/// `Failed` until the user restarts it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CrashLimit {
    pub crashes: u32,
    pub window: Duration,
}

impl CrashLimit {
    /// With the restart backoff (1, 2, 4, 8 s…), five crashes take at least 15 s: a loop, not bad
    /// luck. Ten minutes keeps an agent that crashes once an hour restarting forever.
    pub const DEFAULT: Self = Self { crashes: 5, window: Duration::from_secs(600) };
}

/// One pass over `/proc` for all agents; often enough for a status page, rare enough to be free.
pub const MEMORY_SAMPLE_INTERVAL: Duration = Duration::from_secs(15);

/// How agent processes are started: through the confining helper, under the chosen sandbox.
pub struct Launch {
    /// The `roost` binary; agents run as `roost agent-exec <policy> -- node …`.
    pub helper: PathBuf,
    pub sandbox: sandbox::Sandbox,
    /// Paths no agent may reach even by a granted ancestor: the data dir, database, secret key.
    pub protected: Vec<PathBuf>,
    /// Extra environment every agent gets (`DISCORD_API_URL` when Roost's Discord API is not
    /// Discord's own). Never a secret: agents run the user's code.
    pub env: Vec<(String, String)>,
}

pub struct LocalProvider {
    options: LocalOptions,
    launch: Arc<Launch>,
    runtime: runtime::Installer,
    agents: Arc<Mutex<HashMap<String, Arc<Agent>>>>,
}

impl LocalProvider {
    pub async fn new(options: LocalOptions, launch: Launch) -> Self {
        let launch = Arc::new(launch);
        let runtime = runtime::Installer::new(
            options.runtime_dir.clone(),
            options.openclaw_bin.clone(),
            options.node_bin.clone(),
        );
        let agents = Arc::new(Mutex::new(HashMap::new()));
        tokio::spawn(sample_memory(Arc::downgrade(&agents), options.memory_sample_interval));
        Self { options, launch, runtime, agents }
    }

    fn user_dir(&self, user_id: &str) -> PathBuf {
        self.options.data_dir.join("users").join(user_id)
    }

    /// The agent's workspace, on disk whether or not the agent runs (OpenClaw's state dir is
    /// `<user dir>/state`). Roost reaches it from outside the agent's sandbox.
    async fn workspace(&self, user_id: &str) -> Result<Workspace, FileError> {
        let state = self.user_dir(user_id).join("state");
        Ok(files::blocking(move || Workspace::open(&state).map_err(Into::into)).await?)
    }
}

impl LocalProvider {
    /// A start that timed out stops its agent: nothing keeps running that nobody waits for.
    async fn stopped_unless_ready(
        &self,
        user_id: &str,
        ready: Result<Machine, ProvisionError>,
    ) -> Result<Machine, ProvisionError> {
        if let Err(ProvisionError::NotReady(_)) = &ready {
            tracing::warn!(user_id, "the agent did not become ready in time; stopping it");
            let _ = self.stop(user_id).await;
        }
        ready
    }
}

#[async_trait]
impl Provider for LocalProvider {
    fn name(&self) -> &'static str {
        "local"
    }

    async fn ensure(&self, spec: &AgentSpec, progress: &dyn Progress) -> Result<(), ProvisionError> {
        self.runtime.ensure(&spec.user_id, progress).await?;
        progress.report(&spec.user_id, Stage::PreparingState, "preparing the agent's state directory");
        let dir = self.user_dir(&spec.user_id);
        for sub in sandbox::AGENT_WRITABLE {
            tokio::fs::create_dir_all(dir.join(sub)).await?;
        }
        tokio::task::spawn_blocking(sandbox::prepare_lock_dir)
            .await
            .map_err(|e| ProvisionError::Start(format!("preparing the lock directory failed: {e}")))??;
        Ok(())
    }

    async fn start(&self, spec: &AgentSpec, progress: &dyn Progress) -> Result<Machine, ProvisionError> {
        if let Some(agent) = self.agents.lock().await.get(&spec.user_id).cloned()
            && agent.is_running()
        {
            let ready = agent.wait_ready(progress, self.options.ready_timeout).await;
            return self.stopped_unless_ready(&spec.user_id, ready).await;
        }
        self.ensure(spec, progress).await?;
        orphans::reap_user(&self.user_dir(&spec.user_id)).await;
        let runtime = self.runtime.resolved().await?;
        let how = AgentLaunch {
            spec: spec.clone(),
            dir: self.user_dir(&spec.user_id),
            runtime,
            launch: self.launch.clone(),
            ready_timeout: self.options.ready_timeout,
            crash_limit: self.options.crash_limit,
        };
        let agent = Agent::spawn(how, self.options.background.clone(), progress).await?;
        self.agents.lock().await.insert(spec.user_id.clone(), agent.clone());
        let ready = agent.wait_ready(progress, self.options.ready_timeout).await;
        self.stopped_unless_ready(&spec.user_id, ready).await
    }

    async fn stop(&self, user_id: &str) -> Result<(), ProvisionError> {
        let agent = self.agents.lock().await.remove(user_id);
        if let Some(agent) = agent {
            agent.stop().await;
        }
        Ok(())
    }

    async fn status(&self, user_id: &str) -> MachineState {
        match self.agents.lock().await.get(user_id) {
            Some(agent) => agent.state(),
            None => MachineState::IdleStopped,
        }
    }

    async fn address(&self, user_id: &str) -> Option<String> {
        let agent = self.agents.lock().await.get(user_id).cloned()?;
        (agent.state() == MachineState::Ready).then(|| agent.address())
    }

    async fn memory_bytes(&self, user_id: &str) -> Option<u64> {
        self.agents.lock().await.get(user_id)?.memory_bytes()
    }

    async fn put_secret_file(
        &self,
        user_id: &str,
        name: &str,
        contents: Option<&[u8]>,
    ) -> Result<String, ProvisionError> {
        let path = config::secrets_dir(&self.user_dir(user_id)).join(config::secret_file_name(name)?);
        let contents = contents.map(<[u8]>::to_vec);
        let written = path.clone();
        tokio::task::spawn_blocking(move || config::write_secret(&written, contents.as_deref()))
            .await
            .map_err(|e| ProvisionError::Start(format!("writing a secret file failed: {e}")))??;
        Ok(path.display().to_string())
    }

    async fn list_files(&self, user_id: &str, path: &WorkspacePath) -> Result<Listing, FileError> {
        let workspace = self.workspace(user_id).await?;
        let path = path.clone();
        Ok(files::blocking(move || workspace.list(&path)).await?)
    }

    async fn read_file(&self, user_id: &str, path: &WorkspacePath) -> Result<Download, FileError> {
        let workspace = self.workspace(user_id).await?;
        let path = path.clone();
        let (file, size) = files::blocking(move || workspace.open_file(&path)).await?;
        Ok(Download { size, body: files::stream_file(file) })
    }

    async fn write_file(&self, user_id: &str, path: &WorkspacePath, body: ByteStream) -> Result<u64, FileError> {
        let workspace = self.workspace(user_id).await?;
        let path = path.clone();
        let upload = files::blocking(move || workspace.create_upload(&path)).await?;
        files::pump(upload, body).await
    }

    async fn delete_file(&self, user_id: &str, path: &WorkspacePath, recursive: bool) -> Result<(), FileError> {
        let workspace = self.workspace(user_id).await?;
        let path = path.clone();
        Ok(files::blocking(move || workspace.delete(&path, recursive)).await?)
    }

    async fn export(&self, user_id: &str) -> Result<crate::backup::ArchiveChunks, ProvisionError> {
        let state = self.user_dir(user_id).join("state");
        if !tokio::fs::try_exists(&state).await? {
            return Err(ProvisionError::Unsupported(
                "Your agent has not been started yet, so there is nothing to back up.",
            ));
        }
        // The scratch copy stays on the data disk, outside every agent's reach.
        let scratch = self.options.data_dir.clone();
        // The pinned OpenClaw, unless the operator runs their own build.
        let openclaw = self.options.openclaw_bin.is_none().then(|| OPENCLAW_VERSION.to_string());
        let versions = crate::archive::Versions { roost: env!("CARGO_PKG_VERSION").to_string(), openclaw };
        Ok(crate::backup::stream(state, scratch, versions))
    }

    async fn import(&self, user_id: &str, archive: std::fs::File) -> Result<crate::archive::Restored, ProvisionError> {
        self.stop(user_id).await?;
        let state = self.user_dir(user_id).join("state");
        tokio::fs::create_dir_all(&state).await?;
        Ok(crate::backup::restore(archive, state).await?.summary())
    }

    async fn destroy(&self, user_id: &str) -> Result<(), ProvisionError> {
        self.stop(user_id).await?;
        match tokio::fs::remove_dir_all(self.user_dir(user_id)).await {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e.into()),
            _ => Ok(()),
        }
    }

    async fn reap_leftovers(&self, keep: &[String]) {
        orphans::reap(&self.options.data_dir.join("users"), keep).await;
    }

    async fn shutdown(&self) {
        let mut stopping = tokio::task::JoinSet::new();
        for (_, agent) in self.agents.lock().await.drain() {
            stopping.spawn(async move { agent.stop().await });
        }
        while stopping.join_next().await.is_some() {}
    }
}

/// Samples every running agent's memory until the provider is dropped.
async fn sample_memory(agents: Weak<Mutex<HashMap<String, Arc<Agent>>>>, every: Duration) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let Some(agents) = agents.upgrade() else { return };
        let running: Vec<(u32, Arc<Agent>)> =
            agents.lock().await.values().filter_map(|a| Some((a.leader_pid()?, a.clone()))).collect();
        drop(agents);
        if running.is_empty() {
            continue;
        }
        let leaders: HashSet<u32> = running.iter().map(|(pid, _)| *pid).collect();
        // Reading /proc is quick, but it is file I/O: off the async workers.
        let Ok(totals) = tokio::task::spawn_blocking(move || memory::resident_bytes(&leaders)).await else { continue };
        for (pid, agent) in running {
            agent.record_memory(totals.get(&pid).copied().unwrap_or(0));
        }
    }
}
