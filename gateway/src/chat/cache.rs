//! Writes of the history cache, off the request path: a page load answers with what the agent
//! said, and one writer stores it afterwards, only when it differs from what is cached.

use tokio::sync::mpsc;

use super::{Message, SessionKey};
use crate::db::{Db, chat_messages};
use crate::domain::UserId;

/// Pending writes beyond this are dropped: the next refresh of that chat brings them again.
const QUEUE: usize = 256;
const BATCH: usize = 64;

type Write = (UserId, SessionKey, Vec<Message>);

pub struct HistoryWrites {
    queue: mpsc::Sender<Write>,
}

impl HistoryWrites {
    /// Starts the writer; it stops when this handle is dropped.
    pub fn start(db: Db) -> Self {
        let (queue, pending) = mpsc::channel(QUEUE);
        tokio::spawn(writer(db, pending));
        Self { queue }
    }

    pub fn store(&self, user: &UserId, key: &SessionKey, messages: Vec<Message>) {
        if self.queue.try_send((user.clone(), key.clone(), messages)).is_err() {
            tracing::debug!("history cache queue full; skipped");
        }
    }
}

async fn writer(db: Db, mut pending: mpsc::Receiver<Write>) {
    let mut batch = Vec::with_capacity(BATCH);
    while pending.recv_many(&mut batch, BATCH).await > 0 {
        // Only the newest history of each chat matters.
        let mut latest: Vec<Write> = Vec::with_capacity(batch.len());
        for write in batch.drain(..).rev() {
            if !latest.iter().any(|(u, k, _)| *u == write.0 && *k == write.1) {
                latest.push(write);
            }
        }
        let db = db.clone();
        let runtime = tokio::runtime::Handle::current();
        let written = tokio::task::spawn_blocking(move || runtime.block_on(write_changed(&db, latest))).await;
        match written {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::warn!(error = %e, "caching history failed"),
            Err(e) => tracing::warn!(error = %e, "the history cache writer failed"),
        }
    }
}

async fn write_changed(db: &Db, writes: Vec<Write>) -> Result<(), libsql::Error> {
    let conn = db.conn()?;
    for (user, key, messages) in writes {
        if chat_messages::cached(&conn, &user, &key, super::history::MAX_LIMIT).await? != messages {
            chat_messages::replace(&conn, &user, &key, &messages).await?;
        }
    }
    Ok(())
}
