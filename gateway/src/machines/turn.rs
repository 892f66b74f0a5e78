//! A user's turn for the reconciler: their start gate here (no start or destroy of theirs runs
//! meanwhile) and their lease (no other instance starts or stops them meanwhile).

use std::sync::Arc;

use provisioner::fly::FlyProvider;
use provisioner::lease::Taken;
use provisioner::{AgentSpec, Progress};
use tokio::sync::OwnedMutexGuard;

use super::Machines;
use crate::domain::UserId;

/// A turn held; dropping it ends it (see [`Machines::end_turn`] for the lease).
pub struct Turn<'a> {
    machines: &'a Machines,
    user: UserId,
    gate: Arc<tokio::sync::Mutex<()>>,
    guard: Option<OwnedMutexGuard<()>>,
    /// The lease was taken for this turn (and is let go at its end); `false`: this instance
    /// runs the user's agent and keeps its lease.
    pub took_lease: bool,
}

impl Machines {
    pub fn with_fly(mut self, fly: Option<Arc<FlyProvider>>) -> Self {
        self.fly = fly;
        self
    }

    pub fn fly(&self) -> Option<&Arc<FlyProvider>> {
        self.fly.as_ref()
    }

    /// The user's spec; `None` (logged) if their plan cannot be read now.
    pub async fn spec_for(&self, user: &UserId) -> Option<AgentSpec> {
        (self.spec)(user)
            .await
            .map_err(|e| tracing::warn!(user_id = %user, error = %e, "reading the agent's plan failed"))
            .ok()
    }

    pub fn progress(&self) -> &dyn Progress {
        self.reporter.as_ref()
    }

    /// The user's turn, unless a start or destroy of theirs is under way here, or another
    /// instance holds their lease (`None`: skip them this round). Never waits on either.
    pub async fn try_turn(&self, user: &UserId) -> Option<Turn<'_>> {
        let gate = self.starts.lock().expect("starts lock").entry(user.clone()).or_default().clone();
        let guard = gate.clone().try_lock_owned().ok();
        let mut turn = Turn { machines: self, user: user.clone(), gate, guard, took_lease: false };
        turn.guard.as_ref()?;
        if self.leases.holds(user.as_str()) {
            return Some(turn);
        }
        match self.leases.take(user.as_str()).await {
            Ok(Taken::Mine { .. }) => {
                turn.took_lease = true;
                Some(turn)
            }
            Ok(Taken::HeldBy { .. }) => None,
            Err(e) => {
                tracing::warn!(user_id = %user, error = %e, "taking a lease for the reconciler failed");
                None
            }
        }
    }

    /// Ends a turn: lets go of a lease taken for it (unless the user's agent runs here now).
    pub async fn end_turn(&self, mut turn: Turn<'_>) {
        if turn.took_lease && !self.slots.holds(&turn.user) {
            self.leases.release(turn.user.as_str()).await;
        }
        turn.guard.take();
    }
}

impl Drop for Turn<'_> {
    fn drop(&mut self) {
        self.guard.take();
        let mut starts = self.machines.starts.lock().expect("starts lock");
        // The map's reference and ours: nobody else waits on this gate.
        if Arc::strong_count(&self.gate) == 2 && starts.get(&self.user).is_some_and(|g| Arc::ptr_eq(g, &self.gate)) {
            starts.remove(&self.user);
        }
    }
}
