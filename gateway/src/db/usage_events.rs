//! `usage_events`: one row per metered model call, written once per idempotency key.

use libsql::Connection;

use crate::domain::UserId;

pub struct NewUsageEvent<'a> {
    pub user_id: &'a UserId,
    pub idempotency_key: &'a str,
    pub api: &'static str,
    pub model: &'a str,
    pub input_tokens: u64,
    pub output_tokens: u64,
    /// The provider's HTTP status; 0 when it never answered.
    pub upstream_status: u16,
    pub complete: bool,
    pub created_at: i64,
}

/// Writes the event unless its key is already there (a retried write). True if this call wrote it.
pub async fn insert_once(conn: &Connection, e: &NewUsageEvent<'_>) -> Result<bool, libsql::Error> {
    let tokens = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
    let written = conn
        .execute(
            "INSERT INTO usage_events
                 (user_id, idempotency_key, api, model, input_tokens, output_tokens, upstream_status, complete, created_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)
             ON CONFLICT (idempotency_key) DO NOTHING",
            (
                e.user_id.as_str(),
                e.idempotency_key,
                e.api,
                e.model,
                tokens(e.input_tokens),
                tokens(e.output_tokens),
                i64::from(e.upstream_status),
                i64::from(e.complete),
                e.created_at,
            ),
        )
        .await?;
    Ok(written == 1)
}

/// One model call, as the usage page shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsageRow {
    pub at: i64,
    pub model: String,
    pub input_tokens: i64,
    pub output_tokens: i64,
    pub credits: i64,
}

/// The user's latest calls, newest first.
pub async fn recent(conn: &Connection, user: &UserId, limit: u32) -> Result<Vec<UsageRow>, libsql::Error> {
    let mut rows = conn
        .query(
            "SELECT created_at, coalesce(model, ''), input_tokens, output_tokens, credits FROM usage_events
              WHERE user_id = ?1 ORDER BY id DESC LIMIT ?2",
            (user.as_str(), i64::from(limit)),
        )
        .await?;
    let mut found = Vec::new();
    while let Some(row) = rows.next().await? {
        found.push(UsageRow {
            at: row.get(0)?,
            model: row.get(1)?,
            input_tokens: row.get(2)?,
            output_tokens: row.get(3)?,
            credits: row.get(4)?,
        });
    }
    Ok(found)
}

/// Credits spent per UTC day and model since `since`: `(day start, model, credits, calls)`.
pub async fn by_day(
    conn: &Connection,
    user: &UserId,
    since: i64,
) -> Result<Vec<(i64, String, i64, i64)>, libsql::Error> {
    let mut rows = conn
        .query(
            "SELECT (created_at / 86400) * 86400 AS day, coalesce(model, ''), sum(credits), count(*)
               FROM usage_events WHERE user_id = ?1 AND created_at >= ?2
              GROUP BY day, model ORDER BY day, model LIMIT 1000",
            (user.as_str(), since),
        )
        .await?;
    let mut found = Vec::new();
    while let Some(row) = rows.next().await? {
        found.push((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?));
    }
    Ok(found)
}
