use libsql::Connection;

use super::first_row;

/// Records a delivery; `false` when this `(source, event_id)` was already handled.
pub async fn record_once(
    conn: &Connection,
    source: &str,
    event_id: &str,
    event_type: &str,
    now: i64,
) -> Result<bool, libsql::Error> {
    let inserted = conn
        .execute(
            "INSERT INTO webhook_events (source, event_id, event_type, received_at) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT (source, event_id) DO NOTHING",
            (source, event_id, event_type, now),
        )
        .await?;
    Ok(inserted > 0)
}

pub async fn revoke_clerk_session(conn: &Connection, sid: &str, now: i64) -> Result<(), libsql::Error> {
    conn.execute(
        "INSERT INTO clerk_revoked_sessions (sid, revoked_at) VALUES (?1, ?2) ON CONFLICT (sid) DO NOTHING",
        (sid, now),
    )
    .await?;
    Ok(())
}

pub async fn is_clerk_session_revoked(conn: &Connection, sid: &str) -> Result<bool, libsql::Error> {
    Ok(first_row(conn.query("SELECT 1 FROM clerk_revoked_sessions WHERE sid = ?1", [sid]).await?, |_| Ok(()))
        .await?
        .is_some())
}

/// Deletes deliveries received before `received_before` and revocations older than
/// `revoked_before`; returns how many of each.
pub async fn sweep(conn: &Connection, received_before: i64, revoked_before: i64) -> Result<(u64, u64), libsql::Error> {
    let deliveries = conn.execute("DELETE FROM webhook_events WHERE received_at < ?1", [received_before]).await?;
    let revocations =
        conn.execute("DELETE FROM clerk_revoked_sessions WHERE revoked_at < ?1", [revoked_before]).await?;
    Ok((deliveries, revocations))
}
