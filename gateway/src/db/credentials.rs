//! Which credentials behind open chat sockets have stopped authorizing anything: expired or
//! deleted sessions, revoked or expired API tokens, ended Clerk sessions, deleted accounts.
//! Whoever ended them (this server, another instance, `roost admin`), the database says so.

use std::collections::HashSet;

use libsql::{Connection, Value};

use crate::auth::AuthVia;
use crate::domain::UserId;

/// Identifiers per query; well under SQLite's parameter limit.
const CHUNK: usize = 200;

/// The subset of `open` that is no longer valid at `now`.
pub async fn ended(
    conn: &Connection,
    open: &[(UserId, AuthVia)],
    now: i64,
    session_idle_secs: i64,
) -> Result<Vec<(UserId, AuthVia)>, libsql::Error> {
    let mut sessions = Vec::new();
    let mut tokens = Vec::new();
    let mut clerk_sessions = Vec::new();
    let mut clerk_users = Vec::new();
    for (user, via) in open {
        match via {
            AuthVia::Session { token_hash } => sessions.push(token_hash.clone()),
            AuthVia::ApiToken { token_id } => tokens.push(token_id.clone()),
            AuthVia::Clerk { session_id } => {
                clerk_sessions.push(session_id.clone());
                clerk_users.push(user.as_str().to_string());
            }
        }
    }
    let live_sessions = matching(
        conn,
        "SELECT s.token_hash FROM sessions s JOIN users u ON u.id = s.user_id
         WHERE s.expires_at > ?1 AND s.last_seen_at + ?2 > ?1 AND u.deleted_at IS NULL
         AND u.suspended_at IS NULL AND s.token_hash IN",
        &[now.into(), session_idle_secs.into()],
        &sessions,
    )
    .await?;
    let live_tokens = matching(
        conn,
        "SELECT t.id FROM api_tokens t JOIN users u ON u.id = t.user_id
         WHERE t.revoked_at IS NULL AND (t.expires_at IS NULL OR t.expires_at > ?1) AND u.deleted_at IS NULL
         AND u.suspended_at IS NULL AND t.id IN",
        &[now.into()],
        &tokens,
    )
    .await?;
    let ended_clerk =
        matching(conn, "SELECT sid FROM clerk_revoked_sessions WHERE sid IN", &[], &clerk_sessions).await?;
    let live_users = matching(
        conn,
        "SELECT id FROM users WHERE deleted_at IS NULL AND suspended_at IS NULL AND id IN",
        &[],
        &clerk_users,
    )
    .await?;
    Ok(open
        .iter()
        .filter(|(user, via)| match via {
            AuthVia::Session { token_hash } => !live_sessions.contains(token_hash),
            AuthVia::ApiToken { token_id } => !live_tokens.contains(token_id),
            AuthVia::Clerk { session_id } => ended_clerk.contains(session_id) || !live_users.contains(user.as_str()),
        })
        .cloned()
        .collect())
}

/// The first column of `<sql> (…ids…)`, run in chunks; `fixed` binds `?1…` before the ids.
async fn matching(
    conn: &Connection,
    sql: &str,
    fixed: &[Value],
    ids: &[String],
) -> Result<HashSet<String>, libsql::Error> {
    let mut found = HashSet::new();
    for chunk in ids.chunks(CHUNK) {
        let first = fixed.len() + 1;
        let placeholders: Vec<String> = (first..first + chunk.len()).map(|n| format!("?{n}")).collect();
        let query = format!("{sql} ({})", placeholders.join(", "));
        let mut params = fixed.to_vec();
        params.extend(chunk.iter().map(|id| Value::from(id.clone())));
        let mut rows = conn.query(&query, params).await?;
        while let Some(row) = rows.next().await? {
            found.insert(row.get::<String>(0)?);
        }
    }
    Ok(found)
}
