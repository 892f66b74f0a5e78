//! Session `last_seen_at` refreshes, written off the request path in batches.
//!
//! A returning user's first request after a minute refreshes their session. Written inline,
//! that was one committed transaction (an fsync on a local database) per chat socket set-up, on
//! the async worker: a burst of reconnects queued behind the disk. Here the request only queues
//! the refresh; one writer commits whatever has queued up in one transaction, on a blocking
//! thread. A refresh lost to a crash only makes the idle timeout count from an earlier use.

use tokio::sync::mpsc;

use crate::db::{Db, sessions};

/// Refreshes waiting beyond this are dropped (they are retried on the next use after a minute).
const QUEUE: usize = 8192;
const BATCH: usize = 1024;

pub struct SessionTouches {
    queue: mpsc::Sender<(String, i64)>,
}

impl SessionTouches {
    /// Starts the writer; it stops when this handle is dropped.
    pub fn start(db: Db) -> Self {
        let (queue, pending) = mpsc::channel(QUEUE);
        tokio::spawn(writer(db, pending));
        Self { queue }
    }

    /// Queues `last_seen_at = now` for the session with this token hash.
    pub fn touch(&self, token_hash: String, now: i64) {
        if self.queue.try_send((token_hash, now)).is_err() {
            tracing::debug!("session refresh queue full; skipped");
        }
    }
}

async fn writer(db: Db, mut pending: mpsc::Receiver<(String, i64)>) {
    let mut batch = Vec::with_capacity(BATCH);
    while pending.recv_many(&mut batch, BATCH).await > 0 {
        let touches = std::mem::take(&mut batch);
        let db = db.clone();
        let runtime = tokio::runtime::Handle::current();
        let written = tokio::task::spawn_blocking(move || runtime.block_on(write(&db, &touches))).await;
        match written {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::warn!(error = %e, "refreshing sessions failed"),
            Err(e) => tracing::warn!(error = %e, "the session refresh writer failed"),
        }
    }
}

async fn write(db: &Db, touches: &[(String, i64)]) -> Result<(), libsql::Error> {
    let conn = db.conn()?;
    let tx = conn.transaction().await?;
    for (token_hash, now) in touches {
        sessions::touch(&tx, token_hash, *now).await?;
    }
    tx.commit().await
}
