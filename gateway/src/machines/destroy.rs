//! Destroying a deleted user's agent: the process, its slot, everything the provider kept for
//! it, and then its `machines` row. Run for every deletion, whichever process deleted the
//! account (the sweep below catches deletions by `roost admin` or another instance).

use provisioner::{Progress, Stage};

use super::{ForgetGate, Machines, StartError};
use crate::app::AppState;
use crate::auth::Revoked;
use crate::db::deletion;
use crate::domain::UserId;

impl Machines {
    /// Stops the agent and deletes its data with the provider. Waits for a start under way to
    /// finish first, so a half-done start cannot recreate what was just deleted. Idempotent: a
    /// failed destroy is retried by the sweep, since the `machines` row stays until it succeeds.
    pub async fn destroy(&self, user: &UserId) -> Result<(), StartError> {
        self.destroy_because(user, "deleting the agent and its data with the account", "deleted with the account").await
    }

    /// [`Self::destroy`], with what the user's page shows while (`doing`) and after (`done`).
    pub async fn destroy_because(&self, user: &UserId, doing: &str, done: &str) -> Result<(), StartError> {
        let gate = self.starts.lock().expect("starts lock").entry(user.clone()).or_default().clone();
        let _forget_gate = ForgetGate { starts: &self.starts, user, gate: &gate };
        let _no_start_meanwhile = gate.lock().await;
        if !self.leases.holds(user.as_str()) {
            // Another instance's agent stops there first: its data goes only once nothing runs it.
            self.stop_elsewhere(user, doing).await?;
        }
        self.reporter.report(user.as_str(), Stage::Destroying, doing);
        self.provider
            .destroy(user.as_str())
            .await
            .map_err(|e| StartError::logged(user, "Deleting your agent failed.", &e))?;
        self.release_slot(user);
        self.leases.release(user.as_str()).await;
        let forgotten = match self.reporter.db.conn() {
            Ok(conn) => deletion::forget_machine(&conn, user).await,
            Err(e) => Err(e),
        };
        forgotten.map_err(|e| StartError::logged(user, "Deleting your agent's record failed.", &e))?;
        self.reporter.report(user.as_str(), Stage::Destroyed, done);
        tracing::info!(user_id = %user, "agent destroyed");
        Ok(())
    }
}

/// Destroys the agents of users deleted elsewhere, as often as socket credentials are rechecked,
/// until aborted.
pub async fn sweep_deleted_users(state: AppState) {
    let mut tick = tokio::time::interval(state.relays.timings.credential_recheck);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let found = match state.db.conn() {
            Ok(conn) => deletion::deleted_users_with_machines(&conn).await,
            Err(e) => Err(e),
        };
        match found {
            Ok(users) => {
                for user in users {
                    // Its sockets close as signed out first, not as a lost agent.
                    state.relays.revoke(Revoked::User(user.clone()));
                    // Errors are logged with an id by `destroy`; the row stays for the next tick.
                    if state.machines.destroy(&user).await.is_ok() {
                        tracing::info!(user_id = %user, "destroyed the agent of a deleted account");
                    }
                }
            }
            Err(e) => tracing::warn!(error = %e, "looking for agents of deleted accounts failed"),
        }
        stop_suspended(&state).await;
    }
}

/// Keeps the agents of suspended accounts stopped, whoever suspended them (`roost admin` too).
async fn stop_suspended(state: &AppState) {
    let found = match state.db.conn() {
        Ok(conn) => crate::db::users::suspended(&conn, deletion::SWEEP_BATCH).await,
        Err(e) => Err(e),
    };
    let users = match found {
        Ok(users) => users,
        Err(e) => return tracing::warn!(error = %e, "looking for suspended accounts failed"),
    };
    for user in users {
        if state.machines.is_up(&user).await || state.machines.is_starting(&user) {
            state.relays.revoke(Revoked::User(user.clone()));
            if state.machines.stop_because(&user, "stopped: the account was suspended").await.is_ok() {
                tracing::info!(user_id = %user, "stopped the agent of a suspended account");
            }
        }
    }
}
