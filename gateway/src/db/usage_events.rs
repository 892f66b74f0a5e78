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
