//! Each user's agent machine: start on demand (one start at a time per user), real stages
//! broadcast to whoever is waiting, and every state change written to the `machines` table.

mod destroy;
mod elsewhere;
mod history;
pub mod simulated;
mod stage_writes;
mod turn;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use provisioner::files::{ByteStream, Download, FileError, Listing, WorkspacePath};
use provisioner::lease::Leases;
use provisioner::{AgentSpec, MachineState, Progress, Provider, ProvisionError, Stage};
use serde::Serialize;
use tokio::sync::broadcast;

pub use destroy::sweep_deleted_users;
pub use simulated::SimulatedProvider;
pub use turn::Turn;

use crate::db::Db;
use crate::db::machines as store;
use crate::domain::UserId;
use crate::lifecycle::IdlePolicy;
use crate::lifecycle::activity::Activity;
use crate::lifecycle::slots::{Place, Slots, ordinal};

/// What a waiting browser is shown: `roost.status` payloads.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Status {
    pub state: &'static str,
    pub stage: &'static str,
    pub detail: String,
}

impl Status {
    fn new(stage: Stage, detail: impl Into<String>) -> Self {
        Self { state: stage.state().as_str(), stage: stage.as_str(), detail: detail.into() }
    }
}

/// Builds the spec a user's agent runs with (credentials are derived, never stored; the size and
/// suspend choice are their plan's, read from the database, hence a future). `Err`: the plan
/// could not be read, for the log.
pub type SpecFactory =
    Box<dyn Fn(&UserId) -> futures_util::future::BoxFuture<'static, Result<AgentSpec, String>> + Send + Sync>;

pub struct Machines {
    provider: Arc<dyn Provider>,
    simulated: Option<Arc<SimulatedProvider>>,
    spec: SpecFactory,
    reporter: Arc<Reporter>,
    starts: Mutex<HashMap<UserId, Arc<tokio::sync::Mutex<()>>>>,
    slots: Arc<Slots>,
    activity: Arc<Activity>,
    idle: IdlePolicy,
    leases: Leases,
    /// The `fly` provider itself, for its reconciler (`None` with other providers).
    fly: Option<Arc<provisioner::fly::FlyProvider>>,
}

/// How many agents may run at once, and when an unused one is stopped.
pub struct Limits {
    pub max_agents: usize,
    pub idle: IdlePolicy,
    /// How long a user's lifecycle lease lasts unrenewed ([`provisioner::lease::DEFAULT_TTL`]).
    pub lease_ttl: std::time::Duration,
}

/// A start that failed, as the user is told: a plain sentence and an error id. The details are
/// in the server's log under that id.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct StartError {
    pub message: String,
    /// `agent_failed`: the agent crashed too often and waits for the user's Restart;
    /// `agent_unavailable`: anything else.
    pub code: &'static str,
}

/// A backup or restore that did not happen: the agent would not stop (or, where backups need
/// it running, start), or the provider refused or failed.
#[derive(Debug)]
pub enum BackupError {
    Agent(StartError),
    Provider(provisioner::ProvisionError),
}

/// The reason of a stop the user asked for; their open pages then wait for their Restart.
pub const STOPPED_BY_YOU: &str = "stopped by you";

/// Shown when a failed agent's own reason is no longer known (its stages were forgotten).
const FAILED_WITHOUT_REASON: &str = "your agent crashed repeatedly; it was stopped";

impl StartError {
    fn logged(user: &UserId, public: &str, detail: &dyn std::fmt::Display) -> Self {
        let error_id = uuid::Uuid::new_v4().simple().to_string()[..12].to_string();
        tracing::warn!(user_id = %user, error_id, error = %detail, "the agent did not start");
        Self {
            message: format!("{public} If it keeps happening, give the operator this error id: {error_id}."),
            code: "agent_unavailable",
        }
    }

    fn suspended() -> Self {
        Self {
            message: "This account is suspended, so its agent does not start. Ask the operator of this server.".into(),
            code: "account_suspended",
        }
    }

    fn subscription_ended(hold: &crate::db::agent_holds::Hold, now: i64) -> Self {
        let message = if hold.destroyed_at.is_some() {
            "Your subscription has ended, and your agent's data was deleted after the retention period. \
             Choose a plan on the Usage page (/usage) to start a new agent."
                .to_string()
        } else {
            let days = ((hold.destroy_after - now).max(0) + 86_399) / 86_400;
            let days = days.max(1);
            let days = if days == 1 { "1 more day".to_string() } else { format!("{days} more days") };
            format!(
                "Your subscription has ended, so your agent is stopped. Its data is kept for {days}; \
                 choose a plan on the Usage page (/usage) to start it again."
            )
        };
        Self { message, code: "subscription_ended" }
    }

    fn failed(reason: &str) -> Self {
        let mut chars = reason.chars();
        let sentence: String = chars.next().map(|c| c.to_uppercase().chain(chars).collect()).unwrap_or_default();
        Self { message: format!("{sentence}. Restart it to try again."), code: "agent_failed" }
    }
}

impl Machines {
    pub fn new(
        provider: Arc<dyn Provider>,
        simulated: Option<Arc<SimulatedProvider>>,
        spec: SpecFactory,
        reporter: Arc<Reporter>,
        limits: Limits,
        leases: Leases,
    ) -> Self {
        Self {
            provider,
            simulated,
            spec,
            reporter,
            starts: Mutex::new(HashMap::new()),
            slots: Slots::new(limits.max_agents),
            activity: Arc::new(Activity::default()),
            idle: limits.idle,
            leases,
            fly: None,
        }
    }

    /// The leases this instance holds on its users' lifecycles.
    pub fn leases(&self) -> &Leases {
        &self.leases
    }

    pub fn slots(&self) -> &Arc<Slots> {
        &self.slots
    }

    pub fn activity(&self) -> &Arc<Activity> {
        &self.activity
    }

    pub fn idle_policy(&self) -> IdlePolicy {
        self.idle
    }

    /// A start is under way (or waiting for its slot).
    pub fn is_starting(&self, user: &UserId) -> bool {
        self.starts.lock().expect("starts lock").contains_key(user)
    }

    /// The agent is starting or ready, as its provider sees it.
    pub async fn is_up(&self, user: &UserId) -> bool {
        matches!(self.provider.status(user.as_str()).await, MachineState::Starting | MachineState::Ready)
    }

    pub fn release_slot(&self, user: &UserId) {
        self.slots.release(user);
        self.activity.forget(user);
    }

    /// The in-process simulated agents, when `--agent-provider fake` is used.
    pub fn simulated(&self) -> Option<&Arc<SimulatedProvider>> {
        self.simulated.as_ref()
    }

    /// The last known stage of a user's machine, and every stage after it.
    pub fn subscribe(&self, user: &UserId) -> (Status, broadcast::Receiver<Status>) {
        self.reporter.subscribe(user.as_str())
    }

    /// The agent's address if it is running and ready, without starting anything.
    pub async fn address_if_ready(&self, user: &UserId) -> Option<String> {
        self.provider.address(user.as_str()).await
    }

    /// Writes (or with `None`, deletes) a secret file only the user's agent reads; returns the
    /// path the agent reads it at.
    pub async fn put_secret_file(
        &self,
        user: &UserId,
        name: &str,
        contents: Option<&[u8]>,
    ) -> Result<String, provisioner::ProvisionError> {
        self.provider.put_secret_file(user.as_str(), name, contents).await
    }

    /// The names in a folder of the user's agent's workspace.
    pub async fn list_files(&self, user: &UserId, path: &WorkspacePath) -> Result<Listing, FileError> {
        self.provider.list_files(user.as_str(), path).await
    }

    /// A file of the user's agent's workspace, streamed.
    pub async fn read_file(&self, user: &UserId, path: &WorkspacePath) -> Result<Download, FileError> {
        self.provider.read_file(user.as_str(), path).await
    }

    /// Writes a file of the user's agent's workspace from a streamed body (at most 100 MB).
    pub async fn write_file(&self, user: &UserId, path: &WorkspacePath, body: ByteStream) -> Result<u64, FileError> {
        self.provider.write_file(user.as_str(), path, body).await
    }

    /// Deletes a file or a folder (with `recursive`, and what is in it) of the user's workspace.
    pub async fn delete_file(&self, user: &UserId, path: &WorkspacePath, recursive: bool) -> Result<(), FileError> {
        self.provider.delete_file(user.as_str(), path, recursive).await
    }

    /// Streams a backup of the user's agent state. Where only the running machine reaches it
    /// (Fly), the agent is woken first, its stages shown on the user's pages as for any start.
    pub async fn export(&self, user: &UserId) -> Result<provisioner::backup::ArchiveChunks, BackupError> {
        if self.provider.backups_need_running() {
            self.ensure_ready(user).await.map_err(BackupError::Agent)?;
        }
        self.provider.export(user.as_str()).await.map_err(BackupError::Provider)
    }

    /// Replaces the user's agent state with `archive` (already checked; the provider checks it
    /// again as it unpacks). Where the state is on this host the agent is stopped first and
    /// left stopped; where only the running machine reaches it (Fly) the machine is woken and
    /// its provider pauses the agent on it. Either way the caller starts it after
    /// ([`Self::ensure_ready`] then also waits for a paused agent to be ready again).
    pub async fn import(
        &self,
        user: &UserId,
        archive: std::fs::File,
    ) -> Result<provisioner::archive::Restored, BackupError> {
        if self.provider.backups_need_running() {
            self.ensure_ready(user).await.map_err(BackupError::Agent)?;
        } else {
            self.stop_because(user, "restoring a backup").await.map_err(BackupError::Agent)?;
        }
        self.provider.import(user.as_str(), archive).await.map_err(BackupError::Provider)
    }

    /// The agent's resident memory at its last sample, when its provider measures it.
    pub async fn memory_bytes(&self, user: &UserId) -> Option<u64> {
        self.provider.memory_bytes(user.as_str()).await
    }

    /// Starts the user's machine unless it is ready already; concurrent callers share one start.
    /// A failed agent (a crash loop) is not started again here: a reconnecting page would undo
    /// the crash limit. Only the user's Restart (a stop, then this) brings it back.
    pub async fn ensure_ready(&self, user: &UserId) -> Result<String, StartError> {
        if let Some(address) = self.provider.address(user.as_str()).await {
            return Ok(address);
        }
        if self.provider.status(user.as_str()).await == MachineState::Failed {
            self.release_slot(user);
            let reason = self.reporter.failure(user.as_str()).unwrap_or_else(|| FAILED_WITHOUT_REASON.into());
            return Err(StartError::failed(&reason));
        }
        if let Some(refusal) = self.start_refusal(user).await {
            self.release_slot(user);
            return Err(refusal);
        }
        let gate = self.starts.lock().expect("starts lock").entry(user.clone()).or_default().clone();
        let _forget_gate = ForgetGate { starts: &self.starts, user, gate: &gate };
        let _one_at_a_time = gate.lock().await;
        if let Some(address) = self.provider.address(user.as_str()).await {
            return Ok(address);
        }
        if let Some(address) = self.lease_or_follow(user).await? {
            return Ok(address);
        }
        if let Err(e) = self.wait_for_slot(user).await {
            self.leases.release(user.as_str()).await;
            return Err(e);
        }
        store::upsert(
            &self.reporter.db,
            user,
            self.provider.name(),
            MachineState::Starting,
            Stage::Starting.as_str(),
            "starting",
        )
        .await
        .map_err(|e| StartError::logged(user, "Your agent could not be started.", &e))?;
        let spec = match (self.spec)(user).await {
            Ok(spec) => spec,
            Err(e) => {
                let error = StartError::logged(user, "Your agent could not be started.", &e);
                self.reporter.report(user.as_str(), Stage::Failed, &error.message);
                self.release_slot(user);
                self.leases.release(user.as_str()).await;
                return Err(error);
            }
        };
        match self.provider.start(&spec, self.reporter.as_ref()).await {
            Ok(machine) => {
                store::set_running(&self.reporter.db, user, &machine.address, &machine.external_id).await.ok();
                Ok(machine.address)
            }
            Err(e @ ProvisionError::Exited(_)) => {
                // Stopped on purpose: whoever stopped it reports the stop, not a failure.
                self.release_slot(user);
                Err(StartError { message: e.public_message().into_owned(), code: "agent_unavailable" })
            }
            Err(ProvisionError::CrashLoop(reason)) => {
                // The provider reported this failure with its reason already.
                self.release_slot(user);
                Err(StartError::failed(&reason))
            }
            Err(e) => {
                let error = StartError::logged(user, &e.public_message(), &e);
                self.reporter.report(user.as_str(), Stage::Failed, &error.message);
                self.release_slot(user);
                self.leases.release(user.as_str()).await;
                Err(error)
            }
        }
    }

    /// Why the user's agent may not start now: the account is suspended, or the agent is held
    /// because their subscription ended.
    pub async fn start_refusal(&self, user: &UserId) -> Option<StartError> {
        let suspended = match self.reporter.db.conn() {
            Ok(conn) => crate::db::users::is_suspended(&conn, user).await,
            Err(e) => Err(e),
        };
        if suspended.unwrap_or(false) {
            return Some(StartError::suspended());
        }
        let hold = match self.reporter.db.conn() {
            Ok(conn) => crate::db::agent_holds::find(&conn, user).await,
            Err(e) => Err(e),
        };
        match hold {
            Ok(hold) => hold.map(|h| StartError::subscription_ended(&h, crate::domain::now_secs())),
            Err(e) => {
                // Not a reason to refuse: the start itself then reports the database.
                tracing::warn!(user_id = %user, error = %e, "checking the agent's hold failed");
                None
            }
        }
    }

    /// Takes a slot for the user's agent, showing their place in line while they wait.
    async fn wait_for_slot(&self, user: &UserId) -> Result<(), StartError> {
        let mut ticket = self.slots.take(user).map_err(|e| {
            StartError::logged(user, "Too many agents are waiting to start. Try again in a few minutes.", &e)
        })?;
        while let Place::InLine(n) = ticket.place() {
            let detail = format!(
                "all {} agent slots are in use; you are {} in line, and start when one is free",
                self.slots.max(),
                ordinal(n)
            );
            self.reporter.report(user.as_str(), Stage::Queued, &detail);
            ticket.changed().await;
        }
        self.activity.touch(user);
        Ok(())
    }

    /// Starts the machine in the background (on login), so it is warm when the user chats;
    /// only into a free slot that nobody is waiting for.
    pub fn prewarm(self: &Arc<Self>, user: &UserId) {
        if !self.slots.try_take(user) {
            tracing::debug!(user_id = %user, "no free agent slot; not prewarming");
            return;
        }
        let machines = self.clone();
        let user = user.clone();
        tokio::spawn(async move {
            if let Err(e) = machines.ensure_ready(&user).await {
                tracing::warn!(user_id = %user, error = %e, "prewarm failed");
            }
        });
    }

    pub async fn stop(&self, user: &UserId) -> Result<(), StartError> {
        self.stop_because(user, "stopped").await
    }

    /// Stops the agent and frees its slot; `reason` is what the user's page shows. An agent that
    /// another instance runs is stopped by that instance, at this one's request.
    pub async fn stop_because(&self, user: &UserId, reason: &str) -> Result<(), StartError> {
        if !self.leases.holds(user.as_str()) && self.stop_elsewhere(user, reason).await? {
            return Ok(());
        }
        self.stop_here(user, reason).await
    }

    /// Stops the agent here without asking anyone: its lease is no longer this instance's.
    pub async fn stop_unleased(&self, user: &UserId, reason: &str) -> Result<(), StartError> {
        self.stop_here(user, reason).await
    }

    async fn stop_here(&self, user: &UserId, reason: &str) -> Result<(), StartError> {
        self.provider
            .stop(user.as_str())
            .await
            .map_err(|e| StartError::logged(user, "Stopping your agent failed.", &e))?;
        self.release_slot(user);
        self.leases.release(user.as_str()).await;
        tracing::info!(user_id = %user, reason, "agent stopped");
        self.reporter.report(user.as_str(), Stage::Stopped, reason);
        Ok(())
    }

    /// Stops agents an earlier run left behind, except `keep`'s (see [`Provider::reap_leftovers`]).
    pub async fn reap_leftovers(&self, keep: &[String]) {
        self.provider.reap_leftovers(keep).await;
    }

    /// Stops this instance's agents and lets go of their leases, so another instance can take
    /// them over at once rather than after the leases lapse.
    pub async fn shutdown(&self) {
        self.provider.shutdown().await;
        self.leases.release_all().await;
    }

    /// Forgets the stages of users nobody is waiting on whose machine is not mid-start.
    pub fn prune_stages(&self) {
        self.reporter.prune();
    }

    /// Users with a start gate in memory (tests: gates leave once their start is done).
    pub fn start_gates(&self) -> usize {
        self.starts.lock().expect("starts lock").len()
    }
}

/// Removes a user's start gate when the last caller that took it is done (on any exit).
struct ForgetGate<'a> {
    starts: &'a Mutex<HashMap<UserId, Arc<tokio::sync::Mutex<()>>>>,
    user: &'a UserId,
    gate: &'a Arc<tokio::sync::Mutex<()>>,
}

impl Drop for ForgetGate<'_> {
    fn drop(&mut self) {
        let mut starts = self.starts.lock().expect("starts lock");
        // The map's reference and ours: no other caller is waiting on this gate.
        if Arc::strong_count(self.gate) == 2
            && starts.get(self.user).is_some_and(|current| Arc::ptr_eq(current, self.gate))
        {
            starts.remove(self.user);
        }
    }
}

/// Receives provider progress: tells every waiting socket, updates the `machines` row and
/// appends state changes to the user's history.
pub struct Reporter {
    db: Db,
    channels: Mutex<HashMap<String, StageChannel>>,
    stage_writes: stage_writes::StageWrites,
    history: history::History,
}

/// Every stage reaches subscribers (a stage that lasted a millisecond is still shown).
struct StageChannel {
    last: Status,
    updates: broadcast::Sender<Status>,
}

impl Reporter {
    pub fn new(db: Db) -> Self {
        let stage_writes = stage_writes::StageWrites::start(db.clone());
        let history = history::History::start(db.clone());
        Self { db, channels: Mutex::new(HashMap::new()), stage_writes, history }
    }

    fn subscribe(&self, user_id: &str) -> (Status, broadcast::Receiver<Status>) {
        let mut channels = self.channels.lock().expect("channels lock");
        let channel = channels.entry(user_id.to_string()).or_insert_with(|| StageChannel {
            last: Status::new(Stage::Stopped, "not started"),
            updates: broadcast::channel(64).0,
        });
        (channel.last.clone(), channel.updates.subscribe())
    }

    fn publish(&self, user_id: &str, status: Status) {
        let mut channels = self.channels.lock().expect("channels lock");
        let channel = channels
            .entry(user_id.to_string())
            .or_insert_with(|| StageChannel { last: status.clone(), updates: broadcast::channel(64).0 });
        channel.last = status.clone();
        let _ = channel.updates.send(status);
        if channel.is_forgettable() {
            channels.remove(user_id);
        }
    }

    /// Why the user's machine failed, while that is its last stage.
    fn failure(&self, user_id: &str) -> Option<String> {
        let channels = self.channels.lock().expect("channels lock");
        let last = &channels.get(user_id)?.last;
        (last.stage == Stage::Failed.as_str()).then(|| last.detail.clone())
    }

    /// A forgotten user's next subscriber sees "stopped", and the provider answers from there.
    fn prune(&self) {
        self.channels.lock().expect("channels lock").retain(|_, channel| !channel.is_forgettable());
    }
}

impl StageChannel {
    /// Nobody listens, and the last stage is one a new subscriber need not be shown. A failure
    /// is kept (one per user at most) until the next stage: the page opened later shows it.
    fn is_forgettable(&self) -> bool {
        let settled = matches!(self.last.stage, "ready" | "stopped" | "destroyed");
        settled && self.updates.receiver_count() == 0
    }
}

impl Progress for Reporter {
    fn report(&self, user_id: &str, stage: Stage, detail: &str) {
        tracing::info!(user_id, stage = stage.as_str(), detail, "machine stage");
        self.publish(user_id, Status::new(stage, detail));
        if let Ok(user) = UserId::parse(user_id) {
            self.history.record(user.clone(), stage, detail);
            self.stage_writes.record(user, stage, detail);
        }
    }
}
