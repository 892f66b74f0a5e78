//! Rolling a new `--fly-image` out to existing machines, one canary batch per reconciler round.
//! Only machines that are down are moved (an update restarts a running machine, and its user
//! would lose their agent mid-chat; a running one is moved after its idle stop). Each moved
//! machine is started on the new image, must reach `started` and answer `/readyz` as ready, and
//! is put down again. If one fails, the batch goes back to the image it had, and the rollout is
//! recorded as stopped (in the store, for every instance) until another image is configured.
//! New machines get the configured image regardless.

use super::provider::{FlyProvider, cloud};
use super::ready::{self, agent_address};
use super::reconcile::{Host, Report, Seen, Turn};
use super::types::{MachineConfig, UpdateMachineRequest, WaitState};
use super::{FlyError, WaitOptions};
use crate::reconcile::batch_size;
use crate::{Progress, ProvisionError, Stage};

/// A machine moved in this batch, and the config to put back if the batch fails.
struct Moved {
    user_id: String,
    app: String,
    machine_id: String,
    previous: MachineConfig,
}

/// Health checks of a canary are not the user's business: no stages reach their page.
struct Quiet;

impl Progress for Quiet {
    fn report(&self, _user_id: &str, _stage: Stage, _detail: &str) {}
}

fn down(state: &str) -> bool {
    matches!(state, "stopped" | "suspended" | "created")
}

impl FlyProvider {
    pub(super) async fn roll_out(&self, host: &dyn Host, seen: &[Seen], report: &mut Report) {
        let image = self.options.image.as_str();
        let on_image = |s: &&Seen| s.machine.config.as_ref().is_some_and(|c| c.image == image);
        let done = seen.iter().filter(on_image).count();
        let todo: Vec<&Seen> = seen.iter().filter(|s| !on_image(s) && down(&s.machine.state)).collect();
        if todo.is_empty() {
            return;
        }
        match self.store.failed_rollout(image).await {
            Ok(Some(reason)) => return tracing::debug!(image, reason, "the rollout of this image was stopped"),
            Ok(None) => {}
            Err(e) => return report.errors.push(format!("reading the rollout's state: {e}")),
        }
        let size = batch_size(self.options.rollout, done, todo.len());
        tracing::info!(image, batch = size, on_image = done, waiting = todo.len(), "rolling out a batch");
        let mut moved: Vec<Moved> = Vec::new();
        for target in todo.into_iter().take(size) {
            let turn = host.begin(&target.user_id).await;
            if turn != Turn::Free {
                if turn == Turn::Here {
                    host.end(&target.user_id, turn).await;
                }
                continue;
            }
            let result = self.move_one(host, target, &mut moved).await;
            host.end(&target.user_id, turn).await;
            match result {
                Ok(true) => report.rolled_out += 1,
                Ok(false) => {}
                Err(reason) => {
                    tracing::warn!(image, reason, "a canary failed its health check; rolling the batch back");
                    self.roll_back(host, &moved, report).await;
                    if let Err(e) = self.store.fail_rollout(image, &reason).await {
                        report.errors.push(format!("recording the stopped rollout: {e}"));
                    }
                    return;
                }
            }
        }
    }

    /// Moves one machine to the new image and checks it: `Ok(false)` if it was not moved (on it
    /// already, up meanwhile, or the update refused: the next round tries again), `Err` with the
    /// reason if the check failed (the machine is then in `moved`, to be put back).
    async fn move_one(&self, host: &dyn Host, target: &Seen, moved: &mut Vec<Moved>) -> Result<bool, String> {
        let (user, app) = (target.user_id.as_str(), target.app.as_str());
        // A user who is gone has no agent to check: leave their machine to the account deletion.
        let Some(spec) = host.spec(user).await else { return Ok(false) };
        let machine = self.fly.get_machine(app, &target.machine.id).await.map_err(|e| e.to_string())?;
        let Some(previous) = machine.config.clone() else { return Ok(false) };
        if previous.image == self.options.image || !down(&machine.state) {
            return Ok(false);
        }
        let config = MachineConfig { image: self.options.image.clone(), ..previous.clone() };
        let request = UpdateMachineRequest {
            config,
            current_version: Some(machine.instance_id.clone()),
            skip_launch: false,
            min_secrets_version: None,
        };
        match self.fly.update_machine(app, &machine.id, &request).await {
            Ok(_) => {}
            // Refused outright: nothing changed, so nothing to put back; the next round retries.
            Err(e @ (FlyError::PreconditionFailed(_) | FlyError::Conflict(_) | FlyError::BadRequest(_))) => {
                tracing::info!(machine_id = %machine.id, error = %e, "the image update was refused; next round");
                return Ok(false);
            }
            // Ambiguous: it may have moved; put back if the check fails.
            Err(_) => {}
        }
        moved.push(Moved { user_id: user.to_string(), app: app.to_string(), machine_id: machine.id.clone(), previous });
        let wait = WaitOptions::within(self.options.start_deadline);
        self.fly
            .wait_for_state(app, &machine.id, WaitState::Started, &wait)
            .await
            .map_err(|e| format!("machine {} on the new image did not start: {e}", machine.id))?;
        let address = agent_address(&self.options.agent_address, app, &machine.id, &machine.region);
        ready::wait_ready(&self.http, user, &spec.agent_secret, &address, self.options.ready_timeout, &Quiet)
            .await
            .map_err(|e| format!("machine {} on the new image did not get ready: {e}", machine.id))?;
        self.halt(user).await.map_err(|e| e.to_string())?;
        Ok(true)
    }

    /// Puts every machine of the failed batch back on the config it had, down.
    async fn roll_back(&self, host: &dyn Host, moved: &[Moved], report: &mut Report) {
        for m in moved {
            let turn = host.begin(&m.user_id).await;
            if turn == Turn::Busy {
                report.errors.push(format!("rolling back machine {}: its user is busy; next round", m.machine_id));
                continue;
            }
            match self.restore(m).await {
                Ok(()) => report.rolled_back += 1,
                Err(e) => report.errors.push(format!("rolling back machine {}: {e}", m.machine_id)),
            }
            host.end(&m.user_id, turn).await;
        }
    }

    async fn restore(&self, m: &Moved) -> Result<(), ProvisionError> {
        // Down first: an update of a running machine restarts it, on the image that failed.
        self.halt(&m.user_id).await?;
        let machine = self.fly.get_machine(&m.app, &m.machine_id).await.map_err(|e| cloud("reading the machine", e))?;
        let request = UpdateMachineRequest {
            config: m.previous.clone(),
            current_version: Some(machine.instance_id),
            skip_launch: true,
            min_secrets_version: None,
        };
        self.fly.update_machine(&m.app, &m.machine_id, &request).await.map_err(|e| cloud("rolling back", e))?;
        Ok(())
    }
}
