//! The Stripe webhook inbox: each verified event stored once by `event.id`, then processed by
//! the worker, retried with backoff on failure.

use libsql::Connection;

pub struct NewEvent<'a> {
    pub id: &'a str,
    pub kind: &'a str,
    pub object_id: Option<&'a str>,
    pub customer_id: Option<&'a str>,
    pub livemode: bool,
    pub api_version: Option<&'a str>,
    pub created: i64,
    pub payload: &'a str,
}

/// Stores the event unless its id was stored before; true if this call stored it.
pub async fn insert(conn: &Connection, event: &NewEvent<'_>, now: i64) -> Result<bool, libsql::Error> {
    let inserted = conn
        .execute(
            "INSERT INTO stripe_events
                 (event_id, type, object_id, customer_id, livemode, api_version, created, payload, received_at, next_attempt_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?9)
             ON CONFLICT (event_id) DO NOTHING",
            libsql::params![
                event.id,
                event.kind,
                event.object_id,
                event.customer_id,
                i64::from(event.livemode),
                event.api_version,
                event.created,
                event.payload,
                now,
            ],
        )
        .await?;
    Ok(inserted > 0)
}

/// An event waiting for the worker: what it is about, never its payload's state.
#[derive(Debug, Clone)]
pub struct Pending {
    pub id: String,
    pub kind: String,
    pub object_id: Option<String>,
    pub customer_id: Option<String>,
    pub attempts: i64,
}

/// Up to `limit` events due now, oldest first.
pub async fn due(conn: &Connection, now: i64, limit: u32) -> Result<Vec<Pending>, libsql::Error> {
    let mut rows = conn
        .query(
            "SELECT event_id, type, object_id, customer_id, attempts FROM stripe_events
              WHERE processed_at IS NULL AND next_attempt_at <= ?1
              ORDER BY next_attempt_at, rowid LIMIT ?2",
            (now, i64::from(limit)),
        )
        .await?;
    let mut out = Vec::new();
    while let Some(row) = rows.next().await? {
        out.push(Pending {
            id: row.get(0)?,
            kind: row.get(1)?,
            object_id: row.get(2)?,
            customer_id: row.get(3)?,
            attempts: row.get(4)?,
        });
    }
    Ok(out)
}

pub async fn mark_processed(conn: &Connection, id: &str, now: i64) -> Result<(), libsql::Error> {
    conn.execute("UPDATE stripe_events SET processed_at = ?2, last_error = NULL WHERE event_id = ?1", (id, now))
        .await?;
    Ok(())
}

/// Records a failed attempt; the event is tried again at `retry_at`.
pub async fn mark_failed(conn: &Connection, id: &str, error: &str, retry_at: i64) -> Result<(), libsql::Error> {
    conn.execute(
        "UPDATE stripe_events SET attempts = attempts + 1, last_error = ?2, next_attempt_at = ?3 WHERE event_id = ?1",
        (id, error, retry_at),
    )
    .await?;
    Ok(())
}

/// Processed events received before `before` are deleted; the rest are kept for the worker.
pub async fn sweep(conn: &Connection, before: i64) -> Result<u64, libsql::Error> {
    conn.execute("DELETE FROM stripe_events WHERE processed_at IS NOT NULL AND received_at < ?1", [before]).await
}
