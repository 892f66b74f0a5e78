//! Session `last_seen_at` and API-token `last_used_at` refreshes, written off the request path
//! in batches.
//!
//! A returning user's first request after a minute refreshes their session. Written inline,
//! that was one committed transaction (an fsync on a local database) per chat socket set-up, on
//! the async worker: a burst of reconnects queued behind the disk. Here the request only queues
//! the refresh; one writer commits whatever has queued up in one transaction, on a blocking
//! thread. A refresh lost to a crash only makes the idle timeout count from an earlier use.

use tokio::sync::mpsc;

use crate::db::{Db, api_tokens, sessions};

/// A "used at `now`" mark for a session (by token hash) or an API token (by id).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Touch {
    Session { token_hash: String, now: i64 },
    ApiToken { token_id: String, now: i64 },
}

/// Refreshes waiting beyond this are dropped (they are retried on the next use after a minute).
const QUEUE: usize = 8192;
const BATCH: usize = 1024;

pub struct Touches {
    queue: mpsc::Sender<Touch>,
}

impl Touches {
    /// Starts the writer; it stops when this handle is dropped.
    pub fn start(db: Db) -> Self {
        let (queue, pending) = mpsc::channel(QUEUE);
        tokio::spawn(writer(db, pending));
        Self { queue }
    }

    pub fn touch(&self, touch: Touch) {
        if self.queue.try_send(touch).is_err() {
            tracing::debug!("refresh queue full; skipped");
        }
    }
}

async fn writer(db: Db, mut pending: mpsc::Receiver<Touch>) {
    let mut batch = Vec::with_capacity(BATCH);
    while pending.recv_many(&mut batch, BATCH).await > 0 {
        let touches = std::mem::take(&mut batch);
        let db = db.clone();
        let runtime = tokio::runtime::Handle::current();
        let written = tokio::task::spawn_blocking(move || runtime.block_on(write(&db, &touches))).await;
        match written {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::warn!(error = %e, "refreshing sessions and tokens failed"),
            Err(e) => tracing::warn!(error = %e, "the refresh writer failed"),
        }
    }
}

async fn write(db: &Db, touches: &[Touch]) -> Result<(), libsql::Error> {
    let conn = db.conn()?;
    let tx = conn.transaction().await?;
    for touch in touches {
        match touch {
            Touch::Session { token_hash, now } => sessions::touch(&tx, token_hash, *now).await?,
            Touch::ApiToken { token_id, now } => api_tokens::touch(&tx, token_id, *now).await?,
        }
    }
    tx.commit().await
}
