//! The `fly` [`Provider`]: one Fly app, volume and machine per user, provisioned by the
//! idempotent, crash-safe steps of research §6 (they are in `provision.rs`). Every id Fly returns
//! is written to the user's [`FlyRecord`] at once, so a provision cut short anywhere resumes
//! where it was on the next start instead of making a second app, volume or machine.
//!
//! The gateway serializes starts per user (its start gate and the lease), so this provider does
//! not lock per user itself; a stop may come during a start, though, and ends it (see `start`).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::watch;

use super::client::FlyClient;
use super::error::FlyError;
use super::ready::{self, agent_address};
use super::retry::Sleeper;
use super::store::{FlyRecord, FlyStore, new_provision_id};
use super::types::{Guest, Machine as FlyMachine, StopRequest, WaitState};
use super::workspace_files::Sidecar;
use super::{WaitOptions, names};
use crate::files::{ByteStream, Download, FileError, Listing, WorkspacePath};
use crate::reconcile::{IdleAction, idle_action};
use crate::{AgentSpec, Machine, MachineState, Progress, Provider, ProvisionError, Stage};

/// How the provider provisions, waits and reaches agents.
pub struct FlyOptions {
    /// The org apps are created in (`--fly-org`).
    pub org: String,
    /// Regions in order of preference; a capacity refusal moves to the next (`--fly-regions`).
    pub regions: Vec<String>,
    /// The agent image, pinned by digest in production (pitfall 25).
    pub image: String,
    /// CPU and memory of every agent machine (`--fly-machine-size`).
    pub guest: Guest,
    /// `ws://{machine_id}.vm.{app}.internal:18789/` ([`ready::DEFAULT_AGENT_ADDRESS`]).
    pub agent_address: String,
    /// App names are `<prefix>-<hash>`.
    pub app_prefix: String,
    /// The HMAC key app names are derived under (from the server secret).
    pub name_key: Vec<u8>,
    pub volume_size_gb: u32,
    /// How long a machine may take to reach `started` (an image pull can take minutes, §6 item 7).
    pub start_deadline: Duration,
    pub stop_deadline: Duration,
    /// How long a started agent may take to answer `/readyz` as ready (OpenClaw: 13–31 s).
    pub ready_timeout: Duration,
    /// The pause before re-listing after an ambiguous create failure (research §6 item 6: 1–2 s).
    pub relist_pause: Duration,
    /// Sleeps that pause; tests pass one that returns at once.
    pub sleep: Sleeper,
    /// Put idle machines down by suspending them (a resume takes a few hundred ms instead of a
    /// cold boot) where Fly can (≤ 2 GB); stop them otherwise. Which plans allow it is billing's
    /// call; this is the plain switch it sets. Default: off.
    pub suspend: bool,
    /// A provision still half-done this long after its last step is given up by the reconciler
    /// (research §6 item 9: ~10 min).
    pub provision_deadline: Duration,
    /// Canary batches for rolling out a new `image`.
    pub rollout: crate::reconcile::RolloutPolicy,
}

impl FlyOptions {
    pub fn new(org: String, regions: Vec<String>, image: String, name_key: Vec<u8>) -> Self {
        Self {
            org,
            regions,
            image,
            guest: ready::parse_machine_size(ready::DEFAULT_MACHINE_SIZE).expect("the default size parses"),
            agent_address: ready::DEFAULT_AGENT_ADDRESS.to_string(),
            app_prefix: "roost".to_string(),
            name_key,
            volume_size_gb: 1,
            start_deadline: Duration::from_secs(300),
            stop_deadline: Duration::from_secs(120),
            ready_timeout: Duration::from_secs(180),
            relist_pause: Duration::from_secs(1),
            sleep: Arc::new(|d| Box::pin(tokio::time::sleep(d))),
            suspend: false,
            provision_deadline: Duration::from_secs(15 * 60),
            rollout: crate::reconcile::RolloutPolicy::default(),
        }
    }
}

/// What this process last saw of a user's machine (no `Debug`: it holds the agent secret).
#[derive(Clone)]
pub(super) struct Live {
    pub(super) state: MachineState,
    /// Set once the agent answered as ready.
    pub(super) address: Option<String>,
    /// What its sidecar admits Roost by, from the spec it was started with (for the secret
    /// files route); set with the address.
    pub(super) agent_secret: Option<String>,
}

pub struct FlyProvider {
    pub(super) fly: FlyClient,
    pub(super) options: FlyOptions,
    pub(super) store: Arc<dyn FlyStore>,
    pub(super) http: reqwest::Client,
    live: Mutex<HashMap<String, Live>>,
    /// Bumped by every stop, so a start in progress for that user gives up.
    stops: Mutex<HashMap<String, watch::Sender<u64>>>,
    /// Each user's suspend choice from their last spec (their plan's), for the idle stop, which
    /// gets no spec. One entry per user with a record, like `live`.
    suspends: Mutex<HashMap<String, bool>>,
}

impl FlyProvider {
    pub fn new(fly: FlyClient, options: FlyOptions, store: Arc<dyn FlyStore>) -> Self {
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            .build()
            // Only a broken TLS backend fails here.
            .expect("the HTTP client builds");
        Self {
            fly,
            options,
            store,
            http,
            live: Mutex::new(HashMap::new()),
            stops: Mutex::new(HashMap::new()),
            suspends: Mutex::new(HashMap::new()),
        }
    }

    /// The size the user's machine should have: their plan's, else `--fly-machine-size`.
    pub(super) fn guest_of<'a>(&'a self, spec: &'a AgentSpec) -> &'a Guest {
        spec.guest.as_ref().unwrap_or(&self.options.guest)
    }

    /// Remembers the spec's suspend choice for the user's next idle stop.
    pub(super) fn note_suspend(&self, spec: &AgentSpec) {
        let mut suspends = self.suspends.lock().unwrap_or_else(|e| e.into_inner());
        match spec.suspend {
            Some(choice) => suspends.insert(spec.user_id.clone(), choice),
            None => suspends.remove(&spec.user_id),
        };
    }

    fn suspend_allowed(&self, user_id: &str) -> bool {
        let suspends = self.suspends.lock().unwrap_or_else(|e| e.into_inner());
        suspends.get(user_id).copied().unwrap_or(self.options.suspend)
    }

    fn set_live(&self, user_id: &str, state: MachineState, address: Option<String>) {
        let live = Live { state, address, agent_secret: None };
        self.live.lock().unwrap_or_else(|e| e.into_inner()).insert(user_id.to_string(), live);
    }

    fn set_ready(&self, user_id: &str, address: String, agent_secret: &str) {
        let live =
            Live { state: MachineState::Ready, address: Some(address), agent_secret: Some(agent_secret.to_string()) };
        self.live.lock().unwrap_or_else(|e| e.into_inner()).insert(user_id.to_string(), live);
    }

    pub(super) fn forget_live(&self, user_id: &str) {
        self.live.lock().unwrap_or_else(|e| e.into_inner()).remove(user_id);
    }

    fn stop_signal(&self, user_id: &str) -> watch::Receiver<u64> {
        let mut stops = self.stops.lock().unwrap_or_else(|e| e.into_inner());
        stops.entry(user_id.to_string()).or_insert_with(|| watch::channel(0).0).subscribe()
    }

    fn signal_stop(&self, user_id: &str) {
        if let Some(stops) = self.stops.lock().unwrap_or_else(|e| e.into_inner()).get(user_id) {
            stops.send_modify(|n| *n += 1);
        }
    }

    /// Workspace files are on the machine's volume, reached through its sidecar only while
    /// the agent runs; a stopped machine is not woken for them (the user is told to start it).
    fn sidecar(&self, user_id: &str) -> Result<Sidecar, FileError> {
        let live = self.live(user_id).filter(|l| l.state == MachineState::Ready);
        let (Some(address), Some(secret)) =
            (live.as_ref().and_then(|l| l.address.clone()), live.and_then(|l| l.agent_secret))
        else {
            return Err(FileError::NotRunning);
        };
        Ok(Sidecar { http: self.http.clone(), address, secret })
    }

    pub(super) fn live(&self, user_id: &str) -> Option<Live> {
        self.live.lock().unwrap_or_else(|e| e.into_inner()).get(user_id).cloned()
    }

    /// The user's record, created (and stored) with a fresh provision id if there is none: the
    /// row comes before any Fly call (research §6 item 1).
    pub(super) async fn record(&self, user_id: &str) -> Result<FlyRecord, ProvisionError> {
        if let Some(record) = self.store.load(user_id).await.map_err(storage)? {
            return Ok(record);
        }
        let record = FlyRecord { provision_id: new_provision_id(), ..Default::default() };
        self.save(user_id, &record).await?;
        Ok(record)
    }

    pub(super) async fn save(&self, user_id: &str, record: &FlyRecord) -> Result<(), ProvisionError> {
        self.store.save(user_id, record).await.map_err(storage)
    }

    pub(super) async fn pause(&self) {
        (self.options.sleep)(self.options.relist_pause).await;
    }

    /// Starts the machine if it is down, waits for `started`, then for the agent's `/readyz`.
    async fn run(
        &self,
        spec: &AgentSpec,
        app: &str,
        machine: &FlyMachine,
        just_created: bool,
        progress: &dyn Progress,
    ) -> Result<Machine, ProvisionError> {
        let user = spec.user_id.as_str();
        let region = machine.region.as_str();
        if matches!(machine.state.as_str(), "stopped" | "stopping" | "suspended" | "suspending" | "failed") {
            progress.report(user, Stage::Starting, &format!("waking your agent's machine in {region}"));
            self.fly.start_machine(app, &machine.id).await.map_err(|e| cloud("starting the machine", e))?;
        } else {
            progress.report(user, Stage::Starting, &format!("starting your agent's machine in {region}"));
        }
        let wait = WaitOptions { just_created, ..WaitOptions::within(self.options.start_deadline) };
        self.fly
            .wait_for_state(app, &machine.id, WaitState::Started, &wait)
            .await
            .map_err(|e| cloud("waiting for the machine to start", e))?;
        progress.report(user, Stage::WaitingReady, "your agent's machine is up; waiting for your agent to answer");
        let address = agent_address(&self.options.agent_address, app, &machine.id, region);
        ready::wait_ready(&self.http, user, &spec.agent_secret, &address, self.options.ready_timeout, progress).await?;
        self.set_ready(user, address.clone(), &spec.agent_secret);
        progress.report(user, Stage::Ready, "your agent is ready");
        Ok(Machine { address, external_id: machine.id.clone() })
    }

    /// The machine the record names, if Fly still has it (`None`: gone, or never made).
    pub(super) async fn existing_machine(
        &self,
        record: &FlyRecord,
    ) -> Result<Option<(String, FlyMachine)>, ProvisionError> {
        let (Some(app), Some(id)) = (&record.app_name, &record.machine_id) else { return Ok(None) };
        match self.fly.get_machine(app, id).await {
            Ok(m) if !matches!(m.state.as_str(), "destroying" | "destroyed") => Ok(Some((app.clone(), m))),
            Ok(_) => Ok(None),
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(cloud("reading the machine", e)),
        }
    }

    /// Puts the user's machine down, if there is one, and waits until it is: suspended where
    /// allowed (the user's last spec, else [`FlyOptions::suspend`]), else stopped. A suspended machine is left as it is:
    /// stopping it would throw its snapshot away (research §3).
    pub(super) async fn halt(&self, user_id: &str) -> Result<(), ProvisionError> {
        let record = self.store.load(user_id).await.map_err(storage)?;
        let Some(record) = record else {
            self.forget_live(user_id);
            return Ok(());
        };
        if let Some((app, machine)) = self.existing_machine(&record).await?
            && !matches!(machine.state.as_str(), "suspended" | "stopped")
        {
            self.set_live(user_id, MachineState::Stopping, None);
            let memory = machine.config.as_ref().and_then(|c| c.guest.as_ref()).map_or(u32::MAX, |g| g.memory_mb);
            let suspend = idle_action(self.suspend_allowed(user_id), memory) == IdleAction::Suspend
                && machine.state == "started"
                && self.suspend(&app, &machine).await;
            if !suspend {
                self.stop_and_wait(&app, &machine).await?;
            }
        }
        self.set_live(user_id, MachineState::IdleStopped, None);
        Ok(())
    }

    /// Suspends and waits for it; `false` if Fly refused or it did not get there (then a stop
    /// follows: an idle machine must go down either way).
    async fn suspend(&self, app: &str, machine: &FlyMachine) -> bool {
        if let Err(e) = self.fly.suspend_machine(app, &machine.id).await {
            tracing::info!(app, error = %e, "suspending the machine was refused; stopping it instead");
            return false;
        }
        let wait = WaitOptions::within(self.options.stop_deadline);
        match self.fly.wait_for_state(app, &machine.id, WaitState::Suspended, &wait).await {
            Ok(_) => true,
            Err(e) => {
                tracing::info!(app, error = %e, "the machine did not suspend; stopping it instead");
                false
            }
        }
    }

    pub(super) async fn stop_and_wait(&self, app: &str, machine: &FlyMachine) -> Result<(), ProvisionError> {
        let request = StopRequest { signal: Some("SIGTERM".into()), timeout: Some("30s".into()) };
        match self.fly.stop_machine(app, &machine.id, &request).await {
            Err(e) if !e.is_not_found() => return Err(cloud("stopping the machine", e)),
            _ => {}
        }
        // The docs want the instance id when waiting for `stopped` (research §2.5).
        let wait = WaitOptions {
            version: Some(machine.instance_id.clone()),
            ..WaitOptions::within(self.options.stop_deadline)
        };
        match self.fly.wait_for_state(app, &machine.id, WaitState::Stopped, &wait).await {
            Err(e) if !e.is_not_found() => Err(cloud("waiting for the machine to stop", e)),
            _ => Ok(()),
        }
    }

    async fn start_inner(&self, spec: &AgentSpec, progress: &dyn Progress) -> Result<Machine, ProvisionError> {
        let record = self.record(&spec.user_id).await?;
        // A wake: the machine exists, so only start it.
        if let Some((app, machine)) = self.existing_machine(&record).await? {
            return self.run(spec, &app, &machine, false, progress).await;
        }
        let (app, machine) = self.provision(spec, progress).await?;
        self.run(spec, &app, &machine, true, progress).await
    }
}

#[async_trait]
impl Provider for FlyProvider {
    fn name(&self) -> &'static str {
        "fly"
    }

    async fn ensure(&self, spec: &AgentSpec, progress: &dyn Progress) -> Result<(), ProvisionError> {
        self.note_suspend(spec);
        self.provision(spec, progress).await.map(drop)
    }

    async fn start(&self, spec: &AgentSpec, progress: &dyn Progress) -> Result<Machine, ProvisionError> {
        let mut stopped = self.stop_signal(&spec.user_id);
        self.note_suspend(spec);
        self.set_live(&spec.user_id, MachineState::Starting, None);
        // A stop during the start ends it. Dropping the start mid-step is safe: every step is
        // idempotent and recorded, as for a crash. The machine may have been created after the
        // stop looked for it, so it is stopped once more here.
        let started = tokio::select! {
            started = self.start_inner(spec, progress) => started,
            _ = stopped.changed() => {
                let _ = self.halt(&spec.user_id).await;
                return Err(ProvisionError::Exited("(none here: Fly keeps the machine's log)".into()));
            }
        };
        if let Err(e) = &started {
            // Not `Failed`: that is the crash limit's state, which only the user's restart
            // clears; a refused or slow Fly call is worth trying again on the next chat.
            tracing::warn!(user_id = %spec.user_id, error = %e, "the Fly machine did not start");
            self.forget_live(&spec.user_id);
        }
        started
    }

    async fn stop(&self, user_id: &str) -> Result<(), ProvisionError> {
        self.signal_stop(user_id);
        self.halt(user_id).await
    }

    async fn status(&self, user_id: &str) -> MachineState {
        // After a restart of Roost nothing is known here: the record says whether a machine
        // exists, and the next start wakes it (a start of a started machine is harmless).
        self.live(user_id).map(|l| l.state).unwrap_or(MachineState::IdleStopped)
    }

    async fn address(&self, user_id: &str) -> Option<String> {
        self.live(user_id).filter(|l| l.state == MachineState::Ready).and_then(|l| l.address)
    }

    /// Through the machine's sidecar (`PUT`/`DELETE /roost/secrets/<name>`), which writes it on
    /// the volume; only while the agent runs. A delete while it is down is left to the gateway,
    /// which removes channels it holds no token for once the agent is up again.
    async fn put_secret_file(
        &self,
        user_id: &str,
        name: &str,
        contents: Option<&[u8]>,
    ) -> Result<String, ProvisionError> {
        let live = self.live(user_id).filter(|l| l.state == MachineState::Ready);
        let (Some(address), Some(secret)) =
            (live.as_ref().and_then(|l| l.address.clone()), live.and_then(|l| l.agent_secret))
        else {
            if contents.is_none() {
                return Ok(String::new());
            }
            return Err(ProvisionError::Start("the agent's machine is not running".into()));
        };
        super::secret_files::put(&self.http, &address, &secret, name, contents).await
    }

    async fn list_files(&self, user_id: &str, path: &WorkspacePath) -> Result<Listing, FileError> {
        self.sidecar(user_id)?.list(path).await
    }

    async fn read_file(&self, user_id: &str, path: &WorkspacePath) -> Result<Download, FileError> {
        self.sidecar(user_id)?.read(path).await
    }

    async fn write_file(&self, user_id: &str, path: &WorkspacePath, body: ByteStream) -> Result<u64, FileError> {
        self.sidecar(user_id)?.write(path, body).await
    }

    async fn delete_file(&self, user_id: &str, path: &WorkspacePath, recursive: bool) -> Result<(), FileError> {
        self.sidecar(user_id)?.delete(path, recursive).await
    }

    /// The state is on the machine's volume: only its running sidecar reaches it.
    fn backups_need_running(&self) -> bool {
        true
    }

    async fn export(&self, user_id: &str) -> Result<crate::backup::ArchiveChunks, ProvisionError> {
        self.sidecar(user_id).map_err(not_running)?.export().await
    }

    /// The sidecar checks the archive, pauses OpenClaw, swaps the state and starts OpenClaw
    /// again; the machine keeps running. The agent is then `Starting` here, so the caller's next
    /// start waits until it answers as ready again.
    async fn import(&self, user_id: &str, archive: std::fs::File) -> Result<crate::archive::Restored, ProvisionError> {
        let restored = self.sidecar(user_id).map_err(not_running)?.import(archive).await;
        if !matches!(restored, Err(ProvisionError::Refused(_))) {
            self.set_live(user_id, MachineState::Starting, None);
        }
        restored
    }

    async fn destroy(&self, user_id: &str) -> Result<(), ProvisionError> {
        // A start in progress ends first, or it could recreate what is being deleted.
        self.signal_stop(user_id);
        let record = self.store.load(user_id).await.map_err(storage)?;
        if let Some(app) = record.as_ref().and_then(|r| r.app_name.as_deref()) {
            self.set_live(user_id, MachineState::Destroying, None);
            // Cascades to the machine, volume, secrets and snapshots; a 404 means a teardown
            // done already (research §6 item 8).
            self.fly.delete_app(app).await.map_err(|e| cloud("deleting the app", e))?;
        }
        self.store.clear(user_id).await.map_err(storage)?;
        self.forget_live(user_id);
        self.stops.lock().unwrap_or_else(|e| e.into_inner()).remove(user_id);
        self.suspends.lock().unwrap_or_else(|e| e.into_inner()).remove(user_id);
        Ok(())
    }

    /// Fly machines outlive the process that started them: one an earlier run left up, whose
    /// user no live instance holds, would run (and bill) with nobody using it, since the idle
    /// watcher only sees agents it started. Each is put down here, as an idle one would be.
    async fn reap_leftovers(&self, keep: &[String]) {
        let records = match self.store.list().await {
            Ok(records) => records,
            Err(e) => return tracing::warn!(error = %e, "listing Fly records to reap leftovers failed"),
        };
        for stored in records.into_iter().filter(|r| r.record.machine_id.is_some()) {
            if keep.contains(&stored.user_id) {
                continue;
            }
            if let Err(e) = self.halt(&stored.user_id).await {
                tracing::warn!(user_id = %stored.user_id, error = %e, "putting a leftover Fly machine down failed");
            }
        }
    }

    /// Nothing to do, on purpose: a Fly machine does not depend on this process, and the lease
    /// release that follows lets another instance adopt it (its start of a started machine only
    /// waits for ready). Stopping every agent on each deploy would cut every user's chat and
    /// channels; one that nobody adopts is put down by the reconciler once its lease is free.
    async fn shutdown(&self) {}
}

pub(super) fn cloud(what: &str, error: FlyError) -> ProvisionError {
    ProvisionError::Cloud(format!("{what}: {error}"))
}

/// The gateway wakes the machine before a backup; it went down again meanwhile.
fn not_running(_: FileError) -> ProvisionError {
    ProvisionError::Start("the agent's machine stopped before its backup or restore".into())
}

fn storage(error: super::store::StoreError) -> ProvisionError {
    ProvisionError::Storage(error.to_string())
}

/// The metadata filter for one provisioning attempt's machine.
pub(super) fn by_provision_id(provision_id: &str) -> super::types::MachineFilter {
    super::types::MachineFilter {
        metadata: [(names::PROVISION_ID.to_string(), provision_id.to_string())].into(),
        ..Default::default()
    }
}
