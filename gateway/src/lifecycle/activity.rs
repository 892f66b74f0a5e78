//! What keeps an agent from counting as idle besides open chat sockets: chat runs in progress
//! (from a run's first event to its final, error or aborted one) and model calls in flight.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use crate::domain::UserId;

/// Runs tracked per user; one that never ends (a lost final event) ages out with the rest.
const MAX_RUNS: usize = 64;

#[derive(Default)]
pub struct Activity {
    users: Mutex<HashMap<UserId, UserActivity>>,
}

struct UserActivity {
    model_calls: usize,
    runs: HashSet<String>,
    last_active: Instant,
}

impl UserActivity {
    fn new() -> Self {
        Self { model_calls: 0, runs: HashSet::new(), last_active: Instant::now() }
    }
}

/// A model call in flight; the agent is busy until it is dropped.
pub struct ModelCall {
    activity: Arc<Activity>,
    user: UserId,
}

impl Activity {
    pub fn model_call(self: &Arc<Self>, user: &UserId) -> ModelCall {
        let mut users = self.users.lock().expect("activity lock");
        let entry = users.entry(user.clone()).or_insert_with(UserActivity::new);
        entry.model_calls += 1;
        entry.last_active = Instant::now();
        ModelCall { activity: self.clone(), user: user.clone() }
    }

    /// A chat event of run `run_id`; `ended` for its final, error or aborted event.
    pub fn run_event(&self, user: &UserId, run_id: &str, ended: bool) {
        let mut users = self.users.lock().expect("activity lock");
        let entry = users.entry(user.clone()).or_insert_with(UserActivity::new);
        entry.last_active = Instant::now();
        if ended {
            entry.runs.remove(run_id);
        } else if !entry.runs.contains(run_id) {
            if entry.runs.len() >= MAX_RUNS {
                entry.runs.clear();
            }
            entry.runs.insert(run_id.to_string());
        }
    }

    /// Marks the user active now (a socket is open, for instance).
    pub fn touch(&self, user: &UserId) {
        self.users.lock().expect("activity lock").entry(user.clone()).or_insert_with(UserActivity::new).last_active =
            Instant::now();
    }

    /// Marks the user active at `at` (seen by another instance), unless they were more recently.
    pub fn touch_at(&self, user: &UserId, at: Instant) {
        let mut users = self.users.lock().expect("activity lock");
        match users.get_mut(user) {
            Some(entry) => entry.last_active = entry.last_active.max(at),
            None => {
                users.insert(user.clone(), UserActivity { last_active: at, ..UserActivity::new() });
            }
        }
    }

    /// Users with a run in progress or a model call in flight.
    pub fn busy_users(&self) -> Vec<UserId> {
        let users = self.users.lock().expect("activity lock");
        users.iter().filter(|(_, a)| a.model_calls > 0 || !a.runs.is_empty()).map(|(u, _)| u.clone()).collect()
    }

    /// A run in progress or a model call in flight.
    pub fn is_busy(&self, user: &UserId) -> bool {
        self.users.lock().expect("activity lock").get(user).is_some_and(|a| a.model_calls > 0 || !a.runs.is_empty())
    }

    pub fn last_active(&self, user: &UserId) -> Option<Instant> {
        self.users.lock().expect("activity lock").get(user).map(|a| a.last_active)
    }

    /// Forgets a user whose agent stopped (their next start begins a fresh record).
    pub fn forget(&self, user: &UserId) {
        let mut users = self.users.lock().expect("activity lock");
        if users.get(user).is_some_and(|a| a.model_calls == 0) {
            users.remove(user);
        }
    }
}

impl Drop for ModelCall {
    fn drop(&mut self) {
        let mut users = self.activity.users.lock().expect("activity lock");
        if let Some(entry) = users.get_mut(&self.user) {
            entry.model_calls = entry.model_calls.saturating_sub(1);
            entry.last_active = Instant::now();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_and_model_calls_keep_an_agent_busy_until_they_end() {
        let activity = Arc::new(Activity::default());
        let user = UserId::generate();
        assert!(!activity.is_busy(&user));
        activity.run_event(&user, "r1", false);
        activity.run_event(&user, "r1", false);
        assert!(activity.is_busy(&user));
        activity.run_event(&user, "r1", true);
        assert!(!activity.is_busy(&user));
        let call = activity.model_call(&user);
        assert!(activity.is_busy(&user));
        drop(call);
        assert!(!activity.is_busy(&user));
        activity.forget(&user);
        assert!(activity.last_active(&user).is_none());
    }
}
