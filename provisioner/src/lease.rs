//! One writer per user across Roost instances. Before an instance starts a user's agent it takes
//! the user's lease; it keeps it (renewed every few seconds) for as long as its agent is up, and
//! lets go when the agent stops. Another instance meanwhile neither starts nor stops that agent:
//! it relays to it, and asks the holder for a stop. A lease whose holder stopped renewing it (the
//! instance died or hung) lapses, and the next instance to need the agent takes it over; its
//! version grows on every take, so the old holder can neither renew nor release it again.
//!
//! Storage is the caller's, through [`LeaseStore`]; this module keeps the holder's side.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;

/// How long a lease lasts without renewal. Renewed every third of it, so two missed renewals
/// in a row are survived; a dead instance's agents are taken over this long after it died.
pub const DEFAULT_TTL: Duration = Duration::from_secs(15);

/// The answer to a take.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Taken {
    /// This instance holds the lease now, at this version.
    Mine { version: i64 },
    /// Another live instance holds it.
    HeldBy { holder: String },
}

/// Who holds a lease, at which version (a new take is a new version, even by the same holder).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Holder {
    pub name: String,
    pub version: i64,
}

/// A stop another instance asked the holder for, with the reason the user is shown.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StopRequest {
    pub reason: String,
}

/// One held lease, as its renewal found it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Renewed {
    pub user_id: String,
    /// Milliseconds since the epoch when another instance last saw the user active.
    pub active_elsewhere_at_ms: Option<i64>,
    pub stop_request: Option<StopRequest>,
}

#[derive(Debug, thiserror::Error)]
#[error("lease storage failed: {0}")]
pub struct StoreError(pub String);

/// Where leases live: one row per user (the gateway's `machine_leases` table). Each method is one
/// atomic statement, so instances racing on one database agree on a single holder.
#[async_trait]
pub trait LeaseStore: Send + Sync + 'static {
    /// Takes the lease if it is free, lapsed, or already `holder`'s (then its version grows).
    async fn take(&self, user_id: &str, holder: &str, ttl: Duration) -> Result<Taken, StoreError>;

    /// Extends `holder`'s leases on these users at these versions; returns those still held.
    async fn renew(&self, holder: &str, held: &[(String, i64)], ttl: Duration) -> Result<Vec<Renewed>, StoreError>;

    /// Gives up the lease, only if `holder` still holds it at `version`.
    async fn release(&self, user_id: &str, holder: &str, version: i64) -> Result<(), StoreError>;

    /// The live holder of the user's lease and its version, if any.
    async fn holder(&self, user_id: &str) -> Result<Option<Holder>, StoreError>;

    /// Asks the live holder (if any, and not `asker`) to stop the user's agent; returns the
    /// holder it asked. `None`: nobody else holds it.
    async fn request_stop(&self, user_id: &str, asker: &str, reason: &str) -> Result<Option<Holder>, StoreError>;

    /// Records that these users are active at `asker`, for holders elsewhere to see.
    async fn mark_active(&self, asker: &str, user_ids: &[String]) -> Result<(), StoreError>;
}

/// This instance's side: its name, and the leases it holds.
pub struct Leases {
    store: Box<dyn LeaseStore>,
    holder: String,
    ttl: Duration,
    held: Mutex<HashMap<String, i64>>,
}

/// What one renewal found.
#[derive(Debug, Default)]
pub struct Round {
    /// Leases this instance thought it held and no longer does: their agents must stop.
    pub lost: Vec<String>,
    pub renewed: Vec<Renewed>,
}

impl Leases {
    pub fn new(store: Box<dyn LeaseStore>, holder: String, ttl: Duration) -> Self {
        Self { store, holder, ttl, held: Mutex::new(HashMap::new()) }
    }

    /// A name unique to this process: host, pid and a random part (a restarted process on the
    /// same host and pid must not inherit its predecessor's leases).
    pub fn instance_name() -> String {
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
        let random: u32 = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos() ^ d.as_secs() as u32)
            .unwrap_or(0);
        format!("{}:{}:{random:08x}", host.trim(), std::process::id())
    }

    pub fn holder(&self) -> &str {
        &self.holder
    }

    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    pub fn holds(&self, user_id: &str) -> bool {
        self.held.lock().expect("leases lock").contains_key(user_id)
    }

    pub fn held_count(&self) -> usize {
        self.held.lock().expect("leases lock").len()
    }

    pub async fn take(&self, user_id: &str) -> Result<Taken, StoreError> {
        let taken = self.store.take(user_id, &self.holder, self.ttl).await?;
        if let Taken::Mine { version } = taken {
            self.held.lock().expect("leases lock").insert(user_id.to_string(), version);
        }
        Ok(taken)
    }

    /// Lets go of the user's lease (their agent here stopped). Safe to call when not held.
    pub async fn release(&self, user_id: &str) {
        let Some(version) = self.held.lock().expect("leases lock").remove(user_id) else { return };
        if let Err(e) = self.store.release(user_id, &self.holder, version).await {
            // It lapses on its own within the lease's lifetime.
            tracing::warn!(user_id, error = %e, "releasing a lease failed");
        }
    }

    /// Lets go of every lease held here (on shutdown, once the agents are stopped).
    pub async fn release_all(&self) {
        let held: Vec<String> = self.held.lock().expect("leases lock").keys().cloned().collect();
        for user_id in held {
            self.release(&user_id).await;
        }
    }

    /// Extends every lease held here; reports the ones lost and what other instances asked for.
    pub async fn renew(&self) -> Result<Round, StoreError> {
        let held: Vec<(String, i64)> =
            self.held.lock().expect("leases lock").iter().map(|(u, v)| (u.clone(), *v)).collect();
        if held.is_empty() {
            return Ok(Round::default());
        }
        let renewed = self.store.renew(&self.holder, &held, self.ttl).await?;
        let mut current = self.held.lock().expect("leases lock");
        let lost = held
            .into_iter()
            .filter(|(user, version)| {
                let gone = !renewed.iter().any(|r| &r.user_id == user);
                // Only if nothing replaced it meanwhile (a release and a new take during the round).
                gone && current.get(user) == Some(version) && current.remove(user).is_some()
            })
            .map(|(user, _)| user)
            .collect();
        Ok(Round { lost, renewed })
    }

    pub async fn holder_of(&self, user_id: &str) -> Result<Option<Holder>, StoreError> {
        self.store.holder(user_id).await
    }

    pub async fn request_stop(&self, user_id: &str, reason: &str) -> Result<Option<Holder>, StoreError> {
        self.store.request_stop(user_id, &self.holder, reason).await
    }

    pub async fn mark_active(&self, user_ids: &[String]) -> Result<(), StoreError> {
        if user_ids.is_empty() {
            return Ok(());
        }
        self.store.mark_active(&self.holder, user_ids).await
    }
}
