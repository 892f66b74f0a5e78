//! The `chat_messages` table: a bounded cache of each chat's recent messages, so a page shows
//! history at once. The agent keeps the full transcript.

use libsql::{Connection, TransactionBehavior};

use crate::chat::{Message, SessionKey};
use crate::domain::UserId;

/// Cached text per user across all their chats; the least recently used chats' caches go first.
pub const MAX_USER_BYTES: i64 = 8 << 20;

pub async fn cached(
    conn: &Connection,
    user: &UserId,
    key: &SessionKey,
    limit: u32,
) -> Result<Vec<Message>, libsql::Error> {
    let mut rows = conn
        .query(
            "SELECT role, text, ts, tools FROM (
                SELECT role, text, ts, tools, position FROM chat_messages WHERE user_id = ?1 AND session_key = ?2
                ORDER BY position DESC LIMIT ?3
             ) ORDER BY position",
            (user.as_str(), key.as_str(), i64::from(limit)),
        )
        .await?;
    let mut messages = Vec::new();
    while let Some(row) = rows.next().await? {
        let mut message = Message::new(&row.get::<String>(0)?, row.get::<String>(1)?, row.get(2)?);
        // A row a newer Roost wrote in another shape shows without its cards rather than failing.
        message.tools = row.get::<Option<String>>(3)?.and_then(|t| serde_json::from_str(&t).ok()).unwrap_or_default();
        messages.push(message);
    }
    Ok(messages)
}

/// Replaces one chat's cache, then drops other chats' caches (least recently updated first)
/// until the user is within [`MAX_USER_BYTES`].
pub async fn replace(
    conn: &Connection,
    user: &UserId,
    key: &SessionKey,
    messages: &[Message],
) -> Result<(), libsql::Error> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate).await?;
    tx.execute("DELETE FROM chat_messages WHERE user_id = ?1 AND session_key = ?2", (user.as_str(), key.as_str()))
        .await?;
    for (position, m) in messages.iter().enumerate() {
        tx.execute(
            "INSERT INTO chat_messages (user_id, session_key, position, role, text, ts, tools)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            (user.as_str(), key.as_str(), position as i64, m.role.as_str(), m.text.as_str(), m.ts, tools_json(m)),
        )
        .await?;
    }
    for _ in 0..super::chat_sessions::MAX_SESSIONS {
        let total = super::first_row(
            tx.query(
                "SELECT coalesce(sum(length(CAST(text AS BLOB)) + coalesce(length(CAST(tools AS BLOB)), 0)), 0)
                 FROM chat_messages WHERE user_id = ?1",
                [user.as_str()],
            )
            .await?,
            |row| row.get::<i64>(0),
        )
        .await?
        .unwrap_or(0);
        if total <= MAX_USER_BYTES {
            break;
        }
        let evicted = tx
            .execute(
                "DELETE FROM chat_messages WHERE user_id = ?1 AND session_key = (
                    SELECT m.session_key FROM chat_messages m
                    LEFT JOIN chat_sessions s ON s.user_id = m.user_id AND s.key = m.session_key
                    WHERE m.user_id = ?1 AND m.session_key != ?2
                    GROUP BY m.session_key ORDER BY coalesce(max(s.updated_at), 0) LIMIT 1)",
                (user.as_str(), key.as_str()),
            )
            .await?;
        if evicted == 0 {
            break;
        }
    }
    tx.commit().await
}

fn tools_json(message: &Message) -> Option<String> {
    (!message.tools.is_empty()).then(|| serde_json::to_string(&message.tools).unwrap_or_default())
}
