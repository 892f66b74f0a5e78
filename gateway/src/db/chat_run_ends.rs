//! `chat_run_ends`: how a chat's recent runs ended when they did not finish, newest
//! [`PER_CHAT`] kept (trimmed in the write that adds one); they go with the chat
//! (`chat_sessions::delete`) and the account.

use libsql::{Connection, TransactionBehavior};

use crate::chat::SessionKey;
use crate::domain::UserId;
use crate::relay::run_ends::RunEnd;

/// Ends kept per chat (the page shows the newest 100 messages; most runs finish).
pub const PER_CHAT: u32 = 32;

pub async fn record(conn: &Connection, user: &UserId, key: &SessionKey, end: &RunEnd) -> Result<(), libsql::Error> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate).await?;
    tx.execute(
        "INSERT INTO chat_run_ends (user_id, session_key, state, message, ts) VALUES (?1, ?2, ?3, ?4, ?5)",
        (user.as_str(), key.as_str(), end.state, end.message.as_deref(), end.ts),
    )
    .await?;
    tx.execute(
        "DELETE FROM chat_run_ends WHERE user_id = ?1 AND session_key = ?2 AND id NOT IN
           (SELECT id FROM chat_run_ends WHERE user_id = ?1 AND session_key = ?2 ORDER BY id DESC LIMIT ?3)",
        (user.as_str(), key.as_str(), PER_CHAT),
    )
    .await?;
    tx.commit().await
}

/// The chat's kept ends, oldest first.
pub async fn of(conn: &Connection, user: &UserId, key: &SessionKey) -> Result<Vec<RunEnd>, libsql::Error> {
    let mut rows = conn
        .query(
            "SELECT state, message, ts FROM chat_run_ends WHERE user_id = ?1 AND session_key = ?2 ORDER BY id",
            (user.as_str(), key.as_str()),
        )
        .await?;
    let mut ends = Vec::new();
    while let Some(row) = rows.next().await? {
        let state: String = row.get(0)?;
        let Some(state) = RunEnd::state_of(&state) else { continue };
        ends.push(RunEnd { state, message: row.get(1)?, ts: row.get(2)? });
    }
    Ok(ends)
}
