//! The lifecycle history (`machine_events`): every state change of a user's machine, with when
//! and why. Like the stage rows (`stage_writes`), it is written by one task, off the reporting
//! path, so a report never waits on the database and a user's events land in the order they
//! happened.
//!
//! What counts as a change is the provisioner's rule (`provisioner::lifecycle`): a start is one
//! event, and every failure, stop, ready and destroy is one, even repeated.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, Weak};

use provisioner::Stage;
use provisioner::lifecycle::Change;
use tokio::sync::Notify;

use crate::db::Db;
use crate::db::machine_events::{self as store, KEEP_PER_USER, MachineEvent};
use crate::domain::{UserId, now_secs};

/// An event to write unless it repeats the phase of the user's latest one.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Candidate {
    event: MachineEvent,
    change: Change,
}

impl Candidate {
    fn new(stage: Stage, reason: &str, at: i64) -> Self {
        let change = Change::new(stage, reason, at);
        let event = MachineEvent {
            at,
            state: change.state.as_str().to_string(),
            stage: stage.as_str().to_string(),
            reason: change.reason.clone(),
        };
        Self { event, change }
    }

    /// Whether it follows an event in `latest` state as a change worth recording (the
    /// provisioner's rule).
    fn follows(&self, latest: Option<&str>) -> bool {
        self.change.is_event_after(latest)
    }
}

/// Events not yet written, per user, oldest first. Repeats of the last one's phase are dropped
/// here already; each user's queue holds at most what the table keeps, so a flood of stages
/// while the database is slow costs bounded memory (the oldest, which the trim would remove
/// anyway, go first).
#[derive(Default)]
struct Pending(HashMap<UserId, VecDeque<Candidate>>);

impl Pending {
    fn put(&mut self, user: UserId, candidate: Candidate) {
        let queue = self.0.entry(user).or_default();
        if queue.back().is_some_and(|last| !candidate.follows(Some(&last.event.state))) {
            return;
        }
        if queue.len() >= KEEP_PER_USER as usize {
            queue.pop_front();
        }
        queue.push_back(candidate);
    }

    fn take(&mut self) -> Vec<(UserId, VecDeque<Candidate>)> {
        self.0.drain().collect()
    }
}

pub struct History {
    pending: Arc<Mutex<Pending>>,
    wake: Arc<Notify>,
}

impl History {
    /// Starts the writer; it stops when this handle is dropped.
    pub fn start(db: Db) -> Self {
        let pending = Arc::new(Mutex::new(Pending::default()));
        let wake = Arc::new(Notify::new());
        tokio::spawn(writer(db, Arc::downgrade(&pending), wake.clone()));
        Self { pending, wake }
    }

    /// Timestamped now, written soon.
    pub fn record(&self, user: UserId, stage: Stage, reason: &str) {
        let candidate = Candidate::new(stage, reason, now_secs());
        self.pending.lock().expect("pending lock").put(user, candidate);
        self.wake.notify_one();
    }
}

async fn writer(db: Db, pending: Weak<Mutex<Pending>>, wake: Arc<Notify>) {
    loop {
        wake.notified().await;
        let Some(pending) = pending.upgrade() else { return };
        let batch = pending.lock().expect("pending lock").take();
        drop(pending);
        for (user, queue) in batch {
            for candidate in queue {
                // Checked against the table too: the previous event may be from an earlier batch
                // or an earlier run of Roost.
                if let Err(e) = store::append(&db, &user, &candidate.event, |latest| candidate.follows(latest)).await {
                    tracing::warn!(user_id = %user, error = %e, "could not record a machine event");
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stages(list: &[Stage]) -> Vec<String> {
        let user = UserId::generate();
        let mut pending = Pending::default();
        for &stage in list {
            pending.put(user.clone(), Candidate::new(stage, "why", 0));
        }
        let taken = pending.take();
        let queue = taken.into_iter().next().map(|(_, q)| q).unwrap_or_default();
        queue.into_iter().map(|c| c.event.stage).collect()
    }

    #[test]
    fn a_start_is_one_event_and_its_ready_another() {
        use Stage::*;
        let start = [Queued, Queued, Queued, InstallingRuntime, PreparingState, Starting, WaitingReady, Ready];
        assert_eq!(stages(&start), ["queued", "ready"]);
        assert_eq!(stages(&[PreparingState, Starting, WaitingReady, Ready]), ["preparing_state", "ready"]);
    }

    #[test]
    fn stops_failures_and_readies_are_kept_even_repeated() {
        use Stage::*;
        let list = [Ready, Restarting, WaitingReady, Ready, Stopped, Stopped, Failed, Failed, Destroying, Destroying];
        assert_eq!(
            stages(&list),
            ["ready", "restarting", "ready", "stopped", "stopped", "failed", "failed", "destroying", "destroying"]
        );
    }

    #[test]
    fn a_users_queue_is_bounded_and_keeps_the_newest() {
        let user = UserId::generate();
        let mut pending = Pending::default();
        for n in 0..200 {
            pending.put(user.clone(), Candidate::new(Stage::Stopped, "stopped", n));
        }
        let taken = pending.take();
        let queue = &taken[0].1;
        assert_eq!(queue.len(), KEEP_PER_USER as usize);
        assert_eq!(queue.back().map(|c| c.event.at), Some(199));
        assert!(pending.take().is_empty());
    }

    #[test]
    fn the_latest_written_state_decides_across_batches() {
        let waiting = Candidate::new(Stage::WaitingReady, "waiting", 0);
        assert!(!waiting.follows(Some("provisioning")), "still the same start");
        assert!(waiting.follows(Some("ready")), "a restart after ready");
        assert!(waiting.follows(None));
        assert!(Candidate::new(Stage::Ready, "ready", 0).follows(Some("ready")));
    }
}
