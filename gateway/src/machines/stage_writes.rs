//! Stage rows in the `machines` table, written in the order they happened: one writer takes the
//! latest stage of each user whenever it is free, so a slower earlier write can never land after
//! a later one, and a burst of stages costs one write per user.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use provisioner::Stage;
use tokio::sync::Notify;

use crate::db::{Db, machines as store};
use crate::domain::UserId;

#[derive(Default)]
struct Pending(HashMap<UserId, (Stage, String)>);

impl Pending {
    fn put(&mut self, user: UserId, stage: Stage, detail: String) {
        self.0.insert(user, (stage, detail));
    }

    fn take(&mut self) -> Vec<(UserId, Stage, String)> {
        self.0.drain().map(|(user, (stage, detail))| (user, stage, detail)).collect()
    }
}

pub struct StageWrites {
    pending: Arc<Mutex<Pending>>,
    wake: Arc<Notify>,
}

impl StageWrites {
    /// Starts the writer; it stops when this handle is dropped.
    pub fn start(db: Db) -> Self {
        let pending = Arc::new(Mutex::new(Pending::default()));
        let wake = Arc::new(Notify::new());
        tokio::spawn(writer(db, Arc::downgrade(&pending), wake.clone()));
        Self { pending, wake }
    }

    /// At most one pending stage per user: the map is bounded by the users with a machine.
    pub fn record(&self, user: UserId, stage: Stage, detail: &str) {
        self.pending.lock().expect("pending lock").put(user, stage, detail.to_string());
        self.wake.notify_one();
    }
}

async fn writer(db: Db, pending: std::sync::Weak<Mutex<Pending>>, wake: Arc<Notify>) {
    loop {
        wake.notified().await;
        let Some(pending) = pending.upgrade() else { return };
        let batch = pending.lock().expect("pending lock").take();
        drop(pending);
        for (user, stage, detail) in batch {
            if let Err(e) = store::set_stage(&db, &user, stage.state(), stage.as_str(), &detail).await {
                tracing::warn!(error = %e, "could not record machine stage");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_latest_stage_of_each_user_wins() {
        let (a, b) = (UserId::generate(), UserId::generate());
        let mut pending = Pending::default();
        pending.put(a.clone(), Stage::Starting, "starting".into());
        pending.put(b.clone(), Stage::Starting, "starting".into());
        pending.put(a.clone(), Stage::WaitingReady, "waiting".into());
        pending.put(a.clone(), Stage::Ready, "ready".into());
        let mut taken = pending.take();
        taken.sort_by_key(|(user, ..)| *user != a);
        assert_eq!(taken.len(), 2);
        assert_eq!((taken[0].0.clone(), taken[0].1), (a, Stage::Ready));
        assert_eq!((taken[1].0.clone(), taken[1].1), (b, Stage::Starting));
        assert!(pending.take().is_empty());
    }
}
