//! One reconciler round for the `fly` provider: orphan apps are swept (`sweep.rs`), then each
//! user's record is brought in line with Fly, in that user's turn (their lease): a half-done
//! provision resumes or, past its deadline, is given up and deleted; extra machines and volumes
//! go; a machine up with nobody holding it is put down; a size change is applied to a machine
//! that is down. Last, a new image is rolled out one canary batch per round (`rollout.rs`).
//! The rules are `crate::reconcile`'s; this is their I/O.

use std::time::Duration;

use async_trait::async_trait;

use super::names;
use super::provider::{FlyProvider, cloud};
use super::store::{StoredRecord, now_secs};
use super::types::{Guest, Machine as FlyMachine, MachineFilter, UpdateMachineRequest};
use crate::reconcile::{self as rules, MachineSeen, RecordAction, VolumeSeen};
use crate::{AgentSpec, Progress, ProvisionError, Stage};

/// Whose turn a user is, as the host (the gateway: leases and its start gate) grants it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Turn {
    /// Taken for the reconciler: nobody runs or starts this user's agent now.
    Free,
    /// This process runs the user's agent (and no start of it is under way): leave it up.
    Here,
    /// Another instance holds the user, or a start is under way: skip them this round.
    Busy,
}

/// What the reconciler needs from whoever runs it.
#[async_trait]
pub trait Host: Send + Sync {
    /// Takes the user's turn; every [`Turn::Free`] or [`Turn::Here`] is followed by [`end`](Self::end).
    async fn begin(&self, user_id: &str) -> Turn;
    async fn end(&self, user_id: &str, turn: Turn);
    /// What the user's agent needs to run, with their plan's size and suspend choice; `None` if
    /// the user is gone (their record is then left for the account deletion to destroy) or their
    /// plan cannot be read now (then nothing is changed for them this round).
    async fn spec(&self, user_id: &str) -> Option<AgentSpec>;
    /// Where stages and failures of reconciler work are told to the user.
    fn progress(&self) -> &dyn Progress;
}

/// What one round did, for the log, the next round's cadence and tests.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Report {
    pub resumed: usize,
    pub given_up: usize,
    pub orphan_apps: usize,
    pub duplicate_machines: usize,
    pub leftover_volumes: usize,
    /// Machines found up with nobody holding their user, put down.
    pub put_down: usize,
    pub resized: usize,
    pub rolled_out: usize,
    pub rolled_back: usize,
    /// Users skipped: another instance held them, or a start was under way.
    pub busy: usize,
    /// Calls that failed; the next round tries again.
    pub errors: Vec<String>,
}

impl Report {
    /// Work that is not settled yet: the next round comes sooner.
    pub fn unsettled(&self) -> bool {
        self.resumed + self.given_up + self.orphan_apps + self.duplicate_machines + self.leftover_volumes + self.busy
            > 0
            || self.rolled_out > 0
            || !self.errors.is_empty()
    }

    fn failed(&mut self, what: String) {
        tracing::warn!(error = %what, "a reconciler step failed");
        self.errors.push(what);
    }
}

/// A user's machine seen by the per-user pass, kept for the rollout.
pub(super) struct Seen {
    pub user_id: String,
    pub app: String,
    pub machine: FlyMachine,
}

impl FlyProvider {
    /// One round. Never fails as a whole: each failed step is in the report and is retried on
    /// the next round.
    pub async fn reconcile(&self, host: &dyn Host) -> Report {
        let mut report = Report::default();
        self.sweep_orphans(host, &mut report).await;
        let records = match self.store.list().await {
            Ok(records) => records,
            Err(e) => {
                report.failed(format!("listing Fly records: {e}"));
                return report;
            }
        };
        let mut seen = Vec::new();
        for stored in records {
            let user = stored.user_id.clone();
            let turn = host.begin(&user).await;
            if turn == Turn::Busy {
                report.busy += 1;
                continue;
            }
            if let Err(e) = self.reconcile_user(host, &stored, turn, &mut report, &mut seen).await {
                report.failed(format!("user {user}: {e}"));
            }
            host.end(&user, turn).await;
        }
        self.roll_out(host, &seen, &mut report).await;
        report
    }

    async fn reconcile_user(
        &self,
        host: &dyn Host,
        stored: &StoredRecord,
        turn: Turn,
        report: &mut Report,
        seen: &mut Vec<Seen>,
    ) -> Result<(), ProvisionError> {
        let user = stored.user_id.as_str();
        // Read again inside the turn: the list may predate a step another instance took.
        let Some(record) = self.store.load(user).await.map_err(storage)? else { return Ok(()) };
        let age = Duration::from_secs(now_secs().saturating_sub(stored.updated_at).max(0) as u64);
        match rules::judge_record(record.machine_id.is_some(), age, self.options.provision_deadline) {
            RecordAction::GiveUp => return self.give_up(host, user, &record, report).await,
            RecordAction::Resume => {
                let Some(spec) = host.spec(user).await else { return Ok(()) };
                tracing::info!(user_id = user, "resuming a half-done Fly provision");
                self.provision(&spec, host.progress()).await?;
                report.resumed += 1;
                if turn == Turn::Free {
                    // Nobody asked for this agent now: it was a start cut short. Down until used.
                    self.halt(user).await?;
                    host.progress().report(user, Stage::Stopped, "stopped: set up while you were away");
                }
                return Ok(());
            }
            RecordAction::Settled => {}
        }
        let (Some(app), Some(recorded)) = (record.app_name.clone(), record.machine_id.clone()) else { return Ok(()) };
        let mut record = record;
        let machines =
            self.fly.list_machines(&app, &MachineFilter::default()).await.map_err(|e| cloud("listing machines", e))?;
        let views: Vec<MachineSeen> = machines.iter().map(machine_seen).collect();
        for id in rules::extra_machines(&views, &recorded) {
            tracing::warn!(user_id = user, app = %app, machine_id = %id, "deleting a duplicate machine");
            self.fly.delete_machine(&app, &id, true).await.map_err(|e| cloud("deleting a duplicate machine", e))?;
            report.duplicate_machines += 1;
        }
        // A record whose volume is not the one its machine mounts (written by an older version,
        // or by hand) is set right first, or the mounted volume would count as the extra one.
        let mounted = machines.iter().find(|m| m.id == recorded).and_then(super::provision::mounted_volume);
        if let Some(volume) = mounted
            && record.volume_id.as_ref() != Some(&volume)
        {
            record.volume_id = Some(volume);
            self.store.save(user, &record).await.map_err(storage)?;
        }
        let volumes = self.fly.list_volumes(&app).await.map_err(|e| cloud("listing volumes", e))?;
        let views: Vec<VolumeSeen> = volumes
            .iter()
            .map(|v| VolumeSeen { id: v.id.clone(), state: v.state.clone(), attached: v.attached_machine_id.is_some() })
            .collect();
        for id in rules::extra_volumes(&views, record.volume_id.as_deref()) {
            tracing::warn!(user_id = user, app = %app, volume_id = %id, "deleting a leftover volume");
            self.fly.delete_volume(&app, &id).await.map_err(|e| cloud("deleting a leftover volume", e))?;
            report.leftover_volumes += 1;
        }
        let Some((_, mut machine)) = self.existing_machine(&record).await? else {
            // The recorded machine is gone (deleted by hand, say): the next start makes one.
            return Ok(());
        };
        // The plan's size and suspend choice now: a plan change reaches the machine here.
        let Some(spec) = host.spec(user).await else { return Ok(()) };
        self.note_suspend(&spec);
        if turn == Turn::Free && matches!(machine.state.as_str(), "started" | "starting") {
            tracing::info!(user_id = user, app = %app, "putting down a machine nobody holds");
            self.halt(user).await?;
            host.progress().report(user, Stage::Stopped, "stopped: no Roost server was using it");
            report.put_down += 1;
            machine = self.fly.get_machine(&app, &recorded).await.map_err(|e| cloud("reading the machine", e))?;
        }
        let wanted = self.guest_of(&spec);
        let size_matches = machine.config.as_ref().and_then(|c| c.guest.as_ref()) == Some(wanted);
        if rules::resize_now(size_matches, &machine.state) {
            machine = self.resize(user, &app, machine, wanted).await?;
            report.resized += 1;
        }
        seen.push(Seen { user_id: user.to_string(), app, machine });
        Ok(())
    }

    /// Deletes what a stuck provision made (the app cascades to the rest; 404 is done), forgets
    /// its record so the next start begins afresh, and tells the user why.
    async fn give_up(
        &self,
        host: &dyn Host,
        user: &str,
        record: &super::store::FlyRecord,
        report: &mut Report,
    ) -> Result<(), ProvisionError> {
        tracing::warn!(user_id = user, app = ?record.app_name, "giving up a stuck Fly provision");
        if let Some(app) = &record.app_name {
            self.fly.delete_app(app).await.map_err(|e| cloud("deleting a stuck provision's app", e))?;
        }
        self.store.clear(user).await.map_err(storage)?;
        self.forget_live(user);
        let minutes = self.options.provision_deadline.as_secs() / 60;
        host.progress().report(
            user,
            Stage::Failed,
            &format!("setting up your agent did not finish within {minutes} min; it starts afresh when you chat"),
        );
        report.given_up += 1;
        Ok(())
    }

    /// GET, change the size, POST the whole config back (update replaces it, pitfall 10), the
    /// machine staying down (`skip_launch`).
    async fn resize(
        &self,
        user: &str,
        app: &str,
        machine: FlyMachine,
        wanted: &Guest,
    ) -> Result<FlyMachine, ProvisionError> {
        let Some(mut config) = machine.config.clone() else {
            return Err(ProvisionError::Cloud("the machine's config is missing (its host is unreachable)".into()));
        };
        tracing::info!(user_id = user, app, from = ?config.guest, to = ?wanted, "resizing a machine");
        config.guest = Some(wanted.clone());
        let request = UpdateMachineRequest {
            config,
            current_version: Some(machine.instance_id.clone()),
            skip_launch: true,
            min_secrets_version: None,
        };
        self.fly.update_machine(app, &machine.id, &request).await.map_err(|e| cloud("resizing the machine", e))
    }
}

pub(super) fn machine_seen(m: &FlyMachine) -> MachineSeen {
    MachineSeen {
        id: m.id.clone(),
        state: m.state.clone(),
        ours: m.metadata(names::MANAGED_BY) == Some(names::MANAGED_BY_ROOST),
    }
}

pub(super) fn storage(error: super::store::StoreError) -> ProvisionError {
    ProvisionError::Storage(error.to_string())
}
