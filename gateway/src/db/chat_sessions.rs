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
    /// Has a real title (the user's, or one from its first message), not the default.
    pub titled: bool,
    /// When it was archived (hidden from the list, kept); `None` for a listed chat.
    pub archived_at: Option<i64>,
}

/// Which chats a list shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shelf {
    Listed,
    Archived,
}

/// The longest title search there is (characters).
pub const MAX_SEARCH: usize = 100;

/// Chats per user, whichever path creates them (the API, or a `chat.send` to a new key).
pub const MAX_SESSIONS: i64 = 200;

const COLUMNS: &str = "key, title, created_at, updated_at, titled, archived_at";

fn from_row(row: &libsql::Row) -> Result<Session, libsql::Error> {
    Ok(Session {
        key: row.get(0)?,
        title: row.get(1)?,
        created_at: row.get(2)?,
        updated_at: row.get(3)?,
        titled: row.get::<i64>(4)? != 0,
        archived_at: row.get(5)?,
    })
}

/// `%`, `_` and `\` match themselves in a `LIKE … ESCAPE '\'`.
fn like_pattern(search: &str) -> String {
    let mut out = String::from("%");
    for c in search.chars() {
        if matches!(c, '%' | '_' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('%');
    out
}

pub async fn list(conn: &Connection, user: &UserId) -> Result<Vec<Session>, libsql::Error> {
    list_where(conn, user, Shelf::Listed, None).await
}

/// The user's chats on `shelf` whose title contains `search` (any case), newest first.
pub async fn list_where(
    conn: &Connection,
    user: &UserId,
    shelf: Shelf,
    search: Option<&str>,
) -> Result<Vec<Session>, libsql::Error> {
    let archived = match shelf {
        Shelf::Listed => "archived_at IS NULL",
        Shelf::Archived => "archived_at IS NOT NULL",
    };
    let sql = format!(
        "SELECT {COLUMNS} FROM chat_sessions WHERE user_id = ?1 AND {archived} \
         AND (?2 IS NULL OR title LIKE ?2 ESCAPE '\\') ORDER BY updated_at DESC, key"
    );
    let pattern = search.map(like_pattern);
    let mut rows = conn.query(&sql, libsql::params![user.as_str(), pattern]).await?;
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

/// A listed chat that never had a message or a title, to reuse for "New chat" (not the main one).
pub async fn find_unused(conn: &Connection, user: &UserId) -> Result<Option<Session>, libsql::Error> {
    let sql = format!(
        "SELECT {COLUMNS} FROM chat_sessions WHERE user_id = ?1 AND key != ?2 AND titled = 0 \
         AND archived_at IS NULL AND NOT EXISTS \
           (SELECT 1 FROM chat_messages m WHERE m.user_id = ?1 AND m.session_key = chat_sessions.key) \
         ORDER BY created_at DESC LIMIT 1"
    );
    crate::db::first_row(conn.query(&sql, (user.as_str(), SessionKey::MAIN)).await?, from_row).await
}

/// Titles a chat from its first message, unless it has a title already. True if it changed.
pub async fn title_from_first_message(
    conn: &Connection,
    user: &UserId,
    key: &SessionKey,
    title: &str,
) -> Result<bool, libsql::Error> {
    let changed = conn
        .execute(
            "UPDATE chat_sessions SET title = ?3, titled = 1 WHERE user_id = ?1 AND key = ?2 AND titled = 0",
            (user.as_str(), key.as_str(), title),
        )
        .await?;
    Ok(changed > 0)
}

/// Archives (`true`) or brings back a chat. False if the user has no such chat.
pub async fn set_archived(
    conn: &Connection,
    user: &UserId,
    key: &SessionKey,
    archived: bool,
) -> Result<bool, libsql::Error> {
    let changed = conn
        .execute(
            "UPDATE chat_sessions SET archived_at = CASE WHEN ?3 THEN COALESCE(archived_at, ?4) ELSE NULL END \
             WHERE user_id = ?1 AND key = ?2",
            (user.as_str(), key.as_str(), archived, now_secs()),
        )
        .await?;
    Ok(changed > 0)
}

/// Renames a chat; the main chat's row is created by its first rename if it has none yet.
pub async fn rename(conn: &Connection, user: &UserId, key: &SessionKey, title: &str) -> Result<bool, libsql::Error> {
    let now = now_secs();
    let changed = if key.is_main() {
        conn.execute(
            "INSERT INTO chat_sessions (user_id, key, title, created_at, updated_at, titled) VALUES (?1, ?2, ?3, ?4, ?4, 1)
             ON CONFLICT (user_id, key) DO UPDATE SET title = ?3, updated_at = ?4, titled = 1",
            (user.as_str(), key.as_str(), title, now),
        )
        .await?
    } else {
        conn.execute(
            "UPDATE chat_sessions SET title = ?3, updated_at = ?4, titled = 1 WHERE user_id = ?1 AND key = ?2",
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
    for table in ["chat_messages", "chat_run_ends"] {
        let sql = format!("DELETE FROM {table} WHERE user_id = ?1 AND session_key = ?2");
        tx.execute(&sql, (user.as_str(), key.as_str())).await?;
    }
    let changed =
        tx.execute("DELETE FROM chat_sessions WHERE user_id = ?1 AND key = ?2", (user.as_str(), key.as_str())).await?;
    tx.commit().await?;
    Ok(changed > 0)
}
