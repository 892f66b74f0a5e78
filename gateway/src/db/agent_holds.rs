//! Agents held because their user's paid access ended (migration 0007): not started while held,
//! destroyed once `destroy_after` has passed, released by a resubscription.

use libsql::Connection;

use super::{first_row, user_ids};
use crate::domain::UserId;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Hold {
    pub since: i64,
    pub destroy_after: i64,
    pub destroyed_at: Option<i64>,
}

pub async fn find(conn: &Connection, user: &UserId) -> Result<Option<Hold>, libsql::Error> {
    let rows = conn
        .query("SELECT since, destroy_after, destroyed_at FROM agent_holds WHERE user_id = ?1", [user.as_str()])
        .await?;
    first_row(rows, |row| Ok(Hold { since: row.get(0)?, destroy_after: row.get(1)?, destroyed_at: row.get(2)? })).await
}

/// Holds the agent from `now` unless it is held already (the first loss of access counts).
/// True if this call placed the hold.
pub async fn hold(conn: &Connection, user: &UserId, now: i64, destroy_after: i64) -> Result<bool, libsql::Error> {
    let placed = conn
        .execute(
            "INSERT INTO agent_holds (user_id, since, destroy_after) VALUES (?1, ?2, ?3)
             ON CONFLICT (user_id) DO NOTHING",
            (user.as_str(), now, destroy_after),
        )
        .await?;
    Ok(placed > 0)
}

/// True if there was a hold.
pub async fn release(conn: &Connection, user: &UserId) -> Result<bool, libsql::Error> {
    Ok(conn.execute("DELETE FROM agent_holds WHERE user_id = ?1", [user.as_str()]).await? > 0)
}

/// Held agents whose retention is over and that are not destroyed yet, at most `limit`.
pub async fn due_for_destruction(conn: &Connection, now: i64, limit: u32) -> Result<Vec<UserId>, libsql::Error> {
    let rows = conn
        .query(
            "SELECT user_id FROM agent_holds WHERE destroyed_at IS NULL AND destroy_after <= ?1 LIMIT ?2",
            (now, i64::from(limit)),
        )
        .await?;
    user_ids(rows).await
}

pub async fn mark_destroyed(conn: &Connection, user: &UserId, now: i64) -> Result<(), libsql::Error> {
    conn.execute("UPDATE agent_holds SET destroyed_at = ?2 WHERE user_id = ?1", (user.as_str(), now)).await?;
    Ok(())
}

/// Live users with subscriptions none of which is active or trialing, and no hold yet: those
/// whose access may have ended without an event (a `past_due` grace period running out).
pub async fn unheld_without_good_standing(conn: &Connection, limit: u32) -> Result<Vec<UserId>, libsql::Error> {
    let rows = conn
        .query(
            "SELECT DISTINCT s.user_id FROM subscriptions s JOIN users u ON u.id = s.user_id
              WHERE u.deleted_at IS NULL
                AND NOT EXISTS (SELECT 1 FROM agent_holds h WHERE h.user_id = s.user_id)
                AND NOT EXISTS (SELECT 1 FROM subscriptions t WHERE t.user_id = s.user_id
                                  AND t.status IN ('active', 'trialing'))
              LIMIT ?1",
            [i64::from(limit)],
        )
        .await?;
    user_ids(rows).await
}
