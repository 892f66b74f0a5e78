//! What the `fly` provider must not forget across a crash: per user, the provisioning attempt's
//! id and every Fly id the moment Fly returns it (research §6 item 1). Storage is the caller's,
//! through [`FlyStore`] (the gateway's `fly_machines` table), as with leases.

use std::collections::HashMap;
use std::sync::Mutex;

use async_trait::async_trait;

pub use crate::lease::StoreError;

/// One user's Fly resources, as far as they exist. Written before the first Fly call (so a crash
/// mid-provision finds its `provision_id` again) and after every id Fly hands back.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FlyRecord {
    /// The idempotency tag on the machine's metadata; a machine create is looked up by it before
    /// it is retried.
    pub provision_id: String,
    /// The app name chosen (from [`names::app_name`](super::names::app_name)); set before the
    /// app is created, since a name taken by another customer moves to the next attempt.
    pub app_name: Option<String>,
    pub volume_id: Option<String>,
    pub machine_id: Option<String>,
    /// The region the volume (and so the machine) is in.
    pub region: Option<String>,
    /// The app secrets version the machine must see (`min_secrets_version`).
    pub secrets_version: Option<u64>,
}

/// One user's record as the reconciler reads it, with when it was last written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredRecord {
    pub user_id: String,
    pub record: FlyRecord,
    /// Unix seconds of the last save: a half-done record this old is a stuck provision.
    pub updated_at: i64,
}

/// Where [`FlyRecord`]s live, one per user. Each method is one statement.
#[async_trait]
pub trait FlyStore: Send + Sync + 'static {
    /// Every user's record, for the reconciler (bounded by the user count).
    async fn list(&self) -> Result<Vec<StoredRecord>, StoreError>;
    /// Why a rollout of `image` was stopped, if it was (so no later round starts it again).
    async fn failed_rollout(&self, image: &str) -> Result<Option<String>, StoreError>;
    /// Records that the rollout of `image` was rolled back and stopped, and why.
    async fn fail_rollout(&self, image: &str, reason: &str) -> Result<(), StoreError>;
    async fn load(&self, user_id: &str) -> Result<Option<FlyRecord>, StoreError>;
    /// Inserts or replaces the user's record.
    async fn save(&self, user_id: &str, record: &FlyRecord) -> Result<(), StoreError>;
    /// Forgets the user's record (after their app is deleted). Clearing nothing is fine.
    async fn clear(&self, user_id: &str) -> Result<(), StoreError>;
}

/// A store in memory, for tests and tools that need no database.
#[derive(Default)]
pub struct MemoryFlyStore {
    records: Mutex<HashMap<String, (FlyRecord, i64)>>,
    rollouts: Mutex<HashMap<String, String>>,
}

impl MemoryFlyStore {
    fn records(&self) -> std::sync::MutexGuard<'_, HashMap<String, (FlyRecord, i64)>> {
        self.records.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Backdates the user's record (tests: a provision stuck for this long).
    pub fn age(&self, user_id: &str, secs: i64) {
        if let Some((_, at)) = self.records().get_mut(user_id) {
            *at -= secs;
        }
    }
}

#[async_trait]
impl FlyStore for MemoryFlyStore {
    async fn load(&self, user_id: &str) -> Result<Option<FlyRecord>, StoreError> {
        Ok(self.records().get(user_id).map(|(r, _)| r.clone()))
    }

    async fn save(&self, user_id: &str, record: &FlyRecord) -> Result<(), StoreError> {
        self.records().insert(user_id.to_string(), (record.clone(), now_secs()));
        Ok(())
    }

    async fn list(&self) -> Result<Vec<StoredRecord>, StoreError> {
        let mut all: Vec<StoredRecord> = self
            .records()
            .iter()
            .map(|(user, (record, at))| StoredRecord { user_id: user.clone(), record: record.clone(), updated_at: *at })
            .collect();
        all.sort_by(|a, b| a.user_id.cmp(&b.user_id));
        Ok(all)
    }

    async fn failed_rollout(&self, image: &str) -> Result<Option<String>, StoreError> {
        Ok(self.rollouts.lock().unwrap_or_else(|e| e.into_inner()).get(image).cloned())
    }

    async fn fail_rollout(&self, image: &str, reason: &str) -> Result<(), StoreError> {
        self.rollouts.lock().unwrap_or_else(|e| e.into_inner()).insert(image.to_string(), reason.to_string());
        Ok(())
    }

    async fn clear(&self, user_id: &str) -> Result<(), StoreError> {
        self.records().remove(user_id);
        Ok(())
    }
}

pub(crate) fn now_secs() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0)
}

/// A new provisioning attempt's id: milliseconds since the epoch and 64 random bits, in hex, so
/// ids sort by time (like the ULID research §6 suggests) and never repeat.
pub fn new_provision_id() -> String {
    let ms = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis()).unwrap_or(0);
    format!("{:012x}{:016x}", ms as u64 & 0xffff_ffff_ffff, fastrand::u64(..))
}
