//! Auto-refill settings and the charges they made (migration 0007).

use libsql::Connection;

use super::{first_row, user_ids};
use crate::domain::UserId;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    pub enabled: bool,
    pub pack: String,
    pub monthly_cap: i64,
    pub updated_at: i64,
}

pub async fn settings(conn: &Connection, user: &UserId) -> Result<Option<Settings>, libsql::Error> {
    let rows = conn
        .query("SELECT enabled, pack, monthly_cap, updated_at FROM auto_refills WHERE user_id = ?1", [user.as_str()])
        .await?;
    first_row(rows, |r| {
        Ok(Settings { enabled: r.get::<i64>(0)? != 0, pack: r.get(1)?, monthly_cap: r.get(2)?, updated_at: r.get(3)? })
    })
    .await
}

/// Saving stamps the settings later than every attempt so far, even one made in the same second:
/// a failure counts against the settings only when it came after them, so a save right after a
/// decline must allow the retry it promises (times are whole seconds).
pub async fn save(conn: &Connection, user: &UserId, s: &Settings) -> Result<(), libsql::Error> {
    conn.execute(
        "INSERT INTO auto_refills (user_id, enabled, pack, monthly_cap, updated_at)
         VALUES (?1, ?2, ?3, ?4, MAX(?5, (SELECT COALESCE(MAX(created_at), 0) + 1 FROM auto_refill_attempts WHERE user_id = ?1)))
         ON CONFLICT (user_id) DO UPDATE SET enabled = excluded.enabled, pack = excluded.pack,
           monthly_cap = excluded.monthly_cap, updated_at = excluded.updated_at",
        (user.as_str(), i64::from(s.enabled), s.pack.as_str(), s.monthly_cap, s.updated_at),
    )
    .await?;
    Ok(())
}

/// Users with auto-refill on whose balance is below `threshold`, at most `limit`.
pub async fn low_and_enabled(conn: &Connection, threshold: i64, limit: u32) -> Result<Vec<UserId>, libsql::Error> {
    let rows = conn
        .query(
            "SELECT r.user_id FROM auto_refills r JOIN users u ON u.id = r.user_id
               LEFT JOIN credit_accounts a ON a.user_id = r.user_id
              WHERE r.enabled = 1 AND u.deleted_at IS NULL AND coalesce(a.balance, 0) < ?1 LIMIT ?2",
            (threshold, i64::from(limit)),
        )
        .await?;
    user_ids(rows).await
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attempt {
    pub id: i64,
    pub n: i64,
    pub pack: String,
    pub credits: i64,
    pub payment_intent: Option<String>,
    pub status: String,
    pub error: Option<String>,
    pub created_at: i64,
}

/// The user's refills in `month`, in order.
pub async fn attempts(conn: &Connection, user: &UserId, month: &str) -> Result<Vec<Attempt>, libsql::Error> {
    let mut rows = conn
        .query(
            "SELECT id, n, pack, credits, payment_intent, status, error, created_at FROM auto_refill_attempts
              WHERE user_id = ?1 AND month = ?2 ORDER BY n LIMIT 100",
            (user.as_str(), month),
        )
        .await?;
    let mut out = Vec::new();
    while let Some(r) = rows.next().await? {
        out.push(Attempt {
            id: r.get(0)?,
            n: r.get(1)?,
            pack: r.get(2)?,
            credits: r.get(3)?,
            payment_intent: r.get(4)?,
            status: r.get(5)?,
            error: r.get(6)?,
            created_at: r.get(7)?,
        });
    }
    Ok(out)
}

/// The last failed refill of the user, whenever it was: (when, why).
pub async fn last_failure(conn: &Connection, user: &UserId) -> Result<Option<(i64, String)>, libsql::Error> {
    let rows = conn
        .query(
            "SELECT created_at, coalesce(error, '') FROM auto_refill_attempts
              WHERE user_id = ?1 AND status = 'failed' ORDER BY id DESC LIMIT 1",
            [user.as_str()],
        )
        .await?;
    first_row(rows, |r| Ok((r.get(0)?, r.get(1)?))).await
}

/// Starts the `n`th refill of the month; `None` if another process started it first.
pub async fn begin(
    conn: &Connection,
    user: &UserId,
    month: &str,
    n: i64,
    pack: &str,
    credits: i64,
    now: i64,
) -> Result<Option<i64>, libsql::Error> {
    let rows = conn
        .query(
            "INSERT INTO auto_refill_attempts (user_id, month, n, pack, credits, status, created_at)
             VALUES (?1, ?2, ?3, ?4, ?5, 'pending', ?6) ON CONFLICT DO NOTHING RETURNING id",
            libsql::params![user.as_str(), month, n, pack, credits, now],
        )
        .await?;
    first_row(rows, |r| r.get::<i64>(0)).await
}

pub async fn set_payment_intent(conn: &Connection, id: i64, payment_intent: &str) -> Result<(), libsql::Error> {
    conn.execute(
        "UPDATE auto_refill_attempts SET payment_intent = ?2 WHERE id = ?1 AND payment_intent IS NULL",
        (id, payment_intent),
    )
    .await?;
    Ok(())
}

/// Settles a pending attempt as `succeeded` or `failed`; a settled one stays as it was.
pub async fn settle(
    conn: &Connection,
    id: i64,
    status: &str,
    error: Option<&str>,
    now: i64,
) -> Result<(), libsql::Error> {
    conn.execute(
        "UPDATE auto_refill_attempts SET status = ?2, error = ?3, settled_at = ?4 WHERE id = ?1 AND status = 'pending'",
        libsql::params![id, status, error, now],
    )
    .await?;
    Ok(())
}

pub async fn by_payment_intent(conn: &Connection, payment_intent: &str) -> Result<Option<i64>, libsql::Error> {
    let rows = conn.query("SELECT id FROM auto_refill_attempts WHERE payment_intent = ?1", [payment_intent]).await?;
    first_row(rows, |r| r.get::<i64>(0)).await
}
