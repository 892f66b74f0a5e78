//! The `chat_sessions` table: the user's list of chats and their titles.

use libsql::Connection;
use serde::Serialize;

use crate::chat::SessionKey;
use crate::domain::{UserId, now_secs};

#[derive(Debug, Serialize)]
pub struct Session {
    pub key: String,
    pub title: String,
    pub created_at: i64,
    pub updated_at: i64,
}

/// Chats per user, whichever path creates them (the API, or a `chat.send` to a new key).
pub const MAX_SESSIONS: i64 = 200;

const COLUMNS: &str = "key, title, created_at, updated_at";

fn from_row(row: &libsql::Row) -> Result<Session, libsql::Error> {
    Ok(Session { key: row.get(0)?, title: row.get(1)?, created_at: row.get(2)?, updated_at: row.get(3)? })
}

pub async fn list(conn: &Connection, user: &UserId) -> Result<Vec<Session>, libsql::Error> {
    let sql = format!("SELECT {COLUMNS} FROM chat_sessions WHERE user_id = ?1 ORDER BY updated_at DESC, key");
    let mut rows = conn.query(&sql, [user.as_str()]).await?;
    let mut sessions = Vec::new();
    while let Some(row) = rows.next().await? {
        sessions.push(from_row(&row)?);
    }
    Ok(sessions)
}

pub enum Created {
    Created,
    Exists,
    /// The user has [`MAX_SESSIONS`] chats already.
    AtLimit,
}

/// Creates the chat unless it exists, within the cap, in one statement (no check-then-insert).
pub async fn create(conn: &Connection, user: &UserId, key: &SessionKey, title: &str) -> Result<Created, libsql::Error> {
    let inserted = conn
        .execute(
            "INSERT INTO chat_sessions (user_id, key, title, created_at, updated_at)
             SELECT ?1, ?2, ?3, ?4, ?4 WHERE (SELECT count(*) FROM chat_sessions WHERE user_id = ?1) < ?5
             ON CONFLICT (user_id, key) DO NOTHING",
            (user.as_str(), key.as_str(), title, now_secs(), MAX_SESSIONS),
        )
        .await?;
    if inserted > 0 {
        return Ok(Created::Created);
    }
    Ok(if find(conn, user, key).await?.is_some() { Created::Exists } else { Created::AtLimit })
}

pub async fn find(conn: &Connection, user: &UserId, key: &SessionKey) -> Result<Option<Session>, libsql::Error> {
    let sql = format!("SELECT {COLUMNS} FROM chat_sessions WHERE user_id = ?1 AND key = ?2");
    crate::db::first_row(conn.query(&sql, (user.as_str(), key.as_str())).await?, from_row).await
}

/// Renames a chat; the main chat's row is created by its first rename if it has none yet.
pub async fn rename(conn: &Connection, user: &UserId, key: &SessionKey, title: &str) -> Result<bool, libsql::Error> {
    let now = now_secs();
    let changed = if key.is_main() {
        conn.execute(
            "INSERT INTO chat_sessions (user_id, key, title, created_at, updated_at) VALUES (?1, ?2, ?3, ?4, ?4)
             ON CONFLICT (user_id, key) DO UPDATE SET title = ?3, updated_at = ?4",
            (user.as_str(), key.as_str(), title, now),
        )
        .await?
    } else {
        conn.execute(
            "UPDATE chat_sessions SET title = ?3, updated_at = ?4 WHERE user_id = ?1 AND key = ?2",
            (user.as_str(), key.as_str(), title, now),
        )
        .await?
    };
    Ok(changed > 0)
}

pub async fn touch(conn: &Connection, user: &UserId, key: &SessionKey) -> Result<(), libsql::Error> {
    conn.execute(
        "UPDATE chat_sessions SET updated_at = ?3 WHERE user_id = ?1 AND key = ?2",
        (user.as_str(), key.as_str(), now_secs()),
    )
    .await?;
    Ok(())
}

/// Deletes the chat and its cached messages, in one transaction.
pub async fn delete(conn: &Connection, user: &UserId, key: &SessionKey) -> Result<bool, libsql::Error> {
    let tx = conn.transaction().await?;
    tx.execute("DELETE FROM chat_messages WHERE user_id = ?1 AND session_key = ?2", (user.as_str(), key.as_str()))
        .await?;
    let changed =
        tx.execute("DELETE FROM chat_sessions WHERE user_id = ?1 AND key = ?2", (user.as_str(), key.as_str())).await?;
    tx.commit().await?;
    Ok(changed > 0)
}
