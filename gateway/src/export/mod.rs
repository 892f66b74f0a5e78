//! Backups of a user's agent (issue 15): `GET /api/export` streams the archive the provider
//! writes ([`provisioner::archive`]: config without the platform's keys, transcripts,
//! workspace, a manifest with versions and checksums); `POST /api/import` takes one back.
//!
//! An upload is streamed to an unnamed temporary file in `<data-dir>/backups` (at most
//! [`archive::MAX_ARCHIVE_BYTES`]), checked whole ([`archive::verify`]) before the agent is
//! touched, and only then handed to the provider, which stops the agent and swaps the state in.
//! Roost's own per-user records (the chat list and titles, the message cache) are not in the
//! archive: they stay with the account, and the history itself comes back from the agent's
//! transcripts.

mod upload;

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use provisioner::archive::{self, Manifest, RestoreError};

use crate::domain::UserId;
use crate::error::AppError;

pub use upload::receive;

/// Backups in progress on this instance at once (each may hold a 1 GiB scratch file).
const MAX_RUNNING: usize = 4;

pub struct Backups {
    scratch: PathBuf,
    running: Arc<Mutex<HashSet<UserId>>>,
}

/// Held while a user's backup or restore runs; the next one for them waits until it is dropped.
pub struct Running {
    running: Arc<Mutex<HashSet<UserId>>>,
    user: UserId,
}

impl Drop for Running {
    fn drop(&mut self) {
        self.running.lock().unwrap_or_else(|e| e.into_inner()).remove(&self.user);
    }
}

impl Backups {
    /// Scratch files go in `<data_dir>/backups` (Roost's alone, on the data disk, not in RAM).
    pub fn new(data_dir: &std::path::Path) -> anyhow::Result<Self> {
        let scratch = data_dir.join("backups");
        crate::private_files::dir(&scratch)?;
        Ok(Self { scratch, running: Arc::new(Mutex::new(HashSet::new())) })
    }

    pub fn scratch(&self) -> &std::path::Path {
        &self.scratch
    }

    /// One backup or restore per user at a time, and a few at once in all.
    pub fn begin(&self, user: &UserId) -> Result<Running, AppError> {
        let mut running = self.running.lock().unwrap_or_else(|e| e.into_inner());
        if running.contains(user) {
            return Err(AppError::conflict(
                "backup_in_progress",
                "A backup or restore of your agent is already running. Wait for it to finish.",
            ));
        }
        if running.len() >= MAX_RUNNING {
            return Err(AppError::unavailable(
                "backups_busy",
                "Too many backups are running on this server right now. Try again in a minute.",
                60,
            ));
        }
        running.insert(user.clone());
        Ok(Running { running: self.running.clone(), user: user.clone() })
    }
}

/// Checks an uploaded archive whole, off the async workers; a refusal is the user's sentence.
pub async fn verify(file: std::fs::File) -> Result<(std::fs::File, Manifest), AppError> {
    let mut file = file;
    let checked = tokio::task::spawn_blocking(move || archive::verify(&mut file).map(|m| (file, m)))
        .await
        .map_err(AppError::internal)?;
    checked.map_err(|e| match e {
        RestoreError::Refused(refusal) => refused(refusal),
        RestoreError::Io(e) => AppError::internal(e),
    })
}

pub fn refused(refusal: archive::Refusal) -> AppError {
    AppError::new(axum::http::StatusCode::UNPROCESSABLE_ENTITY, refusal.code(), refusal.message())
}
