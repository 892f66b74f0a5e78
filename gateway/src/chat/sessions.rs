//! The `chat_sessions` table: the user's list of chats and their titles.

use libsql::Connection;
use serde::Serialize;

use super::SessionKey;
use crate::domain::{UserId, now_secs};

#[derive(Debug, Serialize)]
pub struct Session {
    pub key: String,
    pub title: String,
    pub created_at: i64,
    pub updated_at: i64,
}

pub const MAX_SESSIONS: usize = 200;

pub async fn list(conn: &Connection, user: &UserId) -> Result<Vec<Session>, libsql::Error> {
    let mut rows = conn
        .query(
            "SELECT key, title, created_at, updated_at FROM chat_sessions WHERE user_id = ?1 ORDER BY updated_at DESC, key",
            [user.as_str()],
        )
        .await?;
    let mut sessions = Vec::new();
    while let Some(row) = rows.next().await? {
        sessions.push(Session {
            key: row.get(0)?,
            title: row.get(1)?,
            created_at: row.get(2)?,
            updated_at: row.get(3)?,
        });
    }
    Ok(sessions)
}

/// Creates the session unless it exists; returns whether it was created.
pub async fn create(conn: &Connection, user: &UserId, key: &SessionKey, title: &str) -> Result<bool, libsql::Error> {
    let now = now_secs();
    let inserted = conn
        .execute(
            "INSERT INTO chat_sessions (user_id, key, title, created_at, updated_at) VALUES (?1, ?2, ?3, ?4, ?4)
             ON CONFLICT (user_id, key) DO NOTHING",
            (user.as_str(), key.as_str(), title, now),
        )
        .await?;
    Ok(inserted > 0)
}

pub async fn find(conn: &Connection, user: &UserId, key: &SessionKey) -> Result<Option<Session>, libsql::Error> {
    crate::db::first_row(
        conn.query(
            "SELECT key, title, created_at, updated_at FROM chat_sessions WHERE user_id = ?1 AND key = ?2",
            (user.as_str(), key.as_str()),
        )
        .await?,
        |row| Ok(Session { key: row.get(0)?, title: row.get(1)?, created_at: row.get(2)?, updated_at: row.get(3)? }),
    )
    .await
}

pub async fn rename(conn: &Connection, user: &UserId, key: &SessionKey, title: &str) -> Result<bool, libsql::Error> {
    let changed = conn
        .execute(
            "UPDATE chat_sessions SET title = ?3, updated_at = ?4 WHERE user_id = ?1 AND key = ?2",
            (user.as_str(), key.as_str(), title, now_secs()),
        )
        .await?;
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

pub async fn delete(conn: &Connection, user: &UserId, key: &SessionKey) -> Result<bool, libsql::Error> {
    conn.execute("DELETE FROM chat_messages WHERE user_id = ?1 AND session_key = ?2", (user.as_str(), key.as_str()))
        .await?;
    let changed = conn
        .execute("DELETE FROM chat_sessions WHERE user_id = ?1 AND key = ?2", (user.as_str(), key.as_str()))
        .await?;
    Ok(changed > 0)
}
