//! Every open chat socket, by user and by the credential that opened it: the per-user cap, and
//! revocations that reach exactly the sockets they concern and cannot be missed.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use tokio::sync::watch;

use crate::auth::{AuthUser, AuthVia};
use crate::domain::UserId;

/// Sockets one user may hold open, counted from the upgrade (so starting sockets count too).
pub const MAX_SOCKETS_PER_USER: usize = 16;

#[derive(Default)]
pub struct Sockets {
    users: Mutex<HashMap<UserId, HashMap<u64, Entry>>>,
    next_id: AtomicU64,
}

struct Entry {
    via: AuthVia,
    // A flag, not a queue: however busy the socket is, an ending waits here until it looks.
    revoked: watch::Sender<Option<Ending>>,
}

/// Why Roost ends a socket on its own, and what the page is told.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ending {
    /// Its credential ended: the page goes to the login.
    SignedOut,
    /// The user stopped their agent: the page waits for their Restart instead of reconnecting
    /// (which would start the agent again).
    AgentStopped,
}

impl Ending {
    pub fn close_frame(self) -> (u16, &'static str) {
        match self {
            Self::SignedOut => (4401, "signed out"),
            Self::AgentStopped => (4100, "your agent was stopped"),
        }
    }
}

/// A socket's place in the registry; dropping it (the socket ended) frees the place.
pub struct Registration {
    sockets: Arc<Sockets>,
    user: UserId,
    id: u64,
    revoked: watch::Receiver<Option<Ending>>,
}

impl Sockets {
    /// Registers a socket for `auth`, or `None` if the user already holds the maximum.
    /// Check and insert happen under one lock.
    pub fn register(self: &Arc<Self>, auth: &AuthUser) -> Option<Registration> {
        let mut users = self.users.lock().expect("sockets lock");
        let mine = users.entry(auth.user_id.clone()).or_default();
        if mine.len() >= MAX_SOCKETS_PER_USER {
            return None;
        }
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = watch::channel(None);
        mine.insert(id, Entry { via: auth.via.clone(), revoked: tx });
        Some(Registration { sockets: self.clone(), user: auth.user_id.clone(), id, revoked: rx })
    }

    pub fn count(&self, user: &UserId) -> usize {
        self.users.lock().expect("sockets lock").get(user).map_or(0, HashMap::len)
    }

    /// Users with at least one socket open.
    pub fn users(&self) -> Vec<UserId> {
        self.users.lock().expect("sockets lock").iter().filter(|(_, s)| !s.is_empty()).map(|(u, _)| u.clone()).collect()
    }

    /// Marks the sockets of `user` (every user when `None`) whose credential matches as revoked.
    pub fn revoke(&self, user: Option<&UserId>, matches: impl Fn(&AuthVia) -> bool) {
        let users = self.users.lock().expect("sockets lock");
        let mark = |sockets: &HashMap<u64, Entry>| {
            for entry in sockets.values().filter(|e| matches(&e.via)) {
                entry.revoked.send_replace(Some(Ending::SignedOut));
            }
        };
        match user {
            Some(user) => users.get(user).into_iter().for_each(mark),
            None => users.values().for_each(mark),
        }
    }

    /// Ends every socket of the user as their agent was stopped (unless already signed out).
    pub fn agent_stopped(&self, user: &UserId) {
        let users = self.users.lock().expect("sockets lock");
        for entry in users.get(user).into_iter().flat_map(HashMap::values) {
            entry.revoked.send_if_modified(|ending| ending.is_none() && ending.replace(Ending::AgentStopped).is_none());
        }
    }

    /// Each distinct (user, credential) with an open socket, to recheck against the database.
    pub fn credentials(&self) -> Vec<(UserId, AuthVia)> {
        let users = self.users.lock().expect("sockets lock");
        let mut seen = HashSet::new();
        for (user, sockets) in users.iter() {
            for entry in sockets.values() {
                seen.insert((user.clone(), entry.via.clone()));
            }
        }
        seen.into_iter().collect()
    }
}

impl Registration {
    #[cfg(test)]
    fn is_revoked(&self) -> bool {
        self.revoked.borrow().is_some()
    }

    /// The close frame of Roost's ending of this socket if there is one, else `otherwise`: a
    /// socket whose agent the user stopped says so, even when it notices the agent leave first.
    pub fn ending_or(&self, otherwise: (u16, &'static str)) -> (u16, &'static str) {
        let ending = *self.revoked.borrow();
        ending.map_or(otherwise, Ending::close_frame)
    }

    /// Resolves once Roost ends the socket: its credential was revoked, or its agent stopped.
    pub async fn revoked(&mut self) -> Ending {
        let ending = self.revoked.wait_for(Option::is_some).await.map(|ending| ending.unwrap_or(Ending::SignedOut));
        match ending {
            Ok(ending) => ending,
            // The registry holds the sender for as long as this registration lives.
            Err(_) => std::future::pending().await,
        }
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        let mut users = self.sockets.users.lock().expect("sockets lock");
        if let Some(mine) = users.get_mut(&self.user) {
            mine.remove(&self.id);
            if mine.is_empty() {
                users.remove(&self.user);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn auth(user: &UserId, token_hash: &str) -> AuthUser {
        AuthUser { user_id: user.clone(), via: AuthVia::Session { token_hash: token_hash.into() } }
    }

    #[tokio::test]
    async fn a_revocation_waits_for_a_socket_however_many_follow_it() {
        let sockets = Arc::new(Sockets::default());
        let (me, other) = (UserId::generate(), UserId::generate());
        let mut mine = sockets.register(&auth(&me, "a")).unwrap();
        let theirs = sockets.register(&auth(&other, "b")).unwrap();
        sockets.revoke(Some(&me), |via| matches!(via, AuthVia::Session { token_hash } if token_hash == "a"));
        for _ in 0..1000 {
            sockets.revoke(Some(&other), |_| false);
        }
        mine.revoked().await;
        assert!(!theirs.is_revoked(), "another user's socket is not touched");
    }

    #[test]
    fn the_cap_counts_registrations_and_frees_places_on_drop() {
        let sockets = Arc::new(Sockets::default());
        let me = UserId::generate();
        let held: Vec<_> = (0..MAX_SOCKETS_PER_USER).map(|_| sockets.register(&auth(&me, "a")).unwrap()).collect();
        assert!(sockets.register(&auth(&me, "a")).is_none());
        drop(held);
        assert_eq!(sockets.count(&me), 0);
        assert!(sockets.users.lock().unwrap().is_empty(), "a user without sockets leaves the map");
    }
}
