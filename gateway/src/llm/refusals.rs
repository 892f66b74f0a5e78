//! Model calls refused for credits, remembered briefly per user: the agent reports such a
//! failure only as "request failed", so the relay puts Roost's own reason in the chat instead.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::domain::UserId;

/// A chat run fails within seconds of its refused call; older refusals explain nothing.
const REMEMBERED: Duration = Duration::from_secs(120);
/// Users remembered at once; beyond it, expired entries go first, and a new one waits.
const MAX_USERS: usize = 10_000;

#[derive(Default)]
pub struct CreditRefusals {
    recent: Mutex<HashMap<UserId, (Instant, &'static str)>>,
}

impl CreditRefusals {
    pub fn note(&self, user: &UserId, reason: &'static str) {
        let mut recent = self.recent.lock().expect("refusals lock");
        if recent.len() >= MAX_USERS && !recent.contains_key(user) {
            recent.retain(|_, (at, _)| at.elapsed() < REMEMBERED);
            if recent.len() >= MAX_USERS {
                return;
            }
        }
        recent.insert(user.clone(), (Instant::now(), reason));
    }

    /// The reason of the user's last refusal, if it was recent.
    pub fn recent(&self, user: &UserId) -> Option<&'static str> {
        let recent = self.recent.lock().expect("refusals lock");
        recent.get(user).filter(|(at, _)| at.elapsed() < REMEMBERED).map(|(_, reason)| *reason)
    }

    /// The user bought credits (or raised their budget): their next failure is not for credits.
    pub fn forget(&self, user: &UserId) {
        self.recent.lock().expect("refusals lock").remove(user);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_are_per_user_and_bounded() {
        let refusals = CreditRefusals::default();
        let (a, b) = (UserId::generate(), UserId::generate());
        refusals.note(&a, "out");
        assert_eq!(refusals.recent(&a), Some("out"));
        assert_eq!(refusals.recent(&b), None);
        refusals.forget(&a);
        assert_eq!(refusals.recent(&a), None);
        for _ in 0..MAX_USERS + 5 {
            refusals.note(&UserId::generate(), "out");
        }
        assert_eq!(refusals.recent.lock().unwrap().len(), MAX_USERS);
    }
}
