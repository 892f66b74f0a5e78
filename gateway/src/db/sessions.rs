use libsql::Connection;

use super::first_row;
use crate::domain::UserId;

pub struct NewSession<'a> {
    pub token_hash: &'a str,
    pub user_id: &'a UserId,
    pub now: i64,
    pub expires_at: i64,
    pub user_agent: Option<&'a str>,
    pub ip: Option<&'a str>,
}

pub async fn create(conn: &Connection, s: NewSession<'_>) -> Result<(), libsql::Error> {
    conn.execute(
        "INSERT INTO sessions (token_hash, user_id, created_at, last_seen_at, expires_at, user_agent, ip)
         VALUES (?1, ?2, ?3, ?3, ?4, ?5, ?6)",
        (s.token_hash, s.user_id.as_str(), s.now, s.expires_at, s.user_agent, s.ip),
    )
    .await?;
    Ok(())
}

pub struct LiveSession {
    pub user_id: UserId,
    pub last_seen_at: i64,
}

/// The session for this hash if it is neither idle past `idle_secs` nor past its absolute expiry.
pub async fn find_live(
    conn: &Connection,
    token_hash: &str,
    now: i64,
    idle_secs: i64,
) -> Result<Option<LiveSession>, libsql::Error> {
    let row = first_row(
        conn.query(
            "SELECT s.user_id, s.last_seen_at FROM sessions s JOIN users u ON u.id = s.user_id
             WHERE s.token_hash = ?1 AND s.expires_at > ?2 AND s.last_seen_at + ?3 > ?2 AND u.deleted_at IS NULL
               AND u.suspended_at IS NULL",
            (token_hash, now, idle_secs),
        )
        .await?,
        |row| Ok((row.get::<String>(0)?, row.get::<i64>(1)?)),
    )
    .await?;
    Ok(row
        .and_then(|(user_id, last_seen_at)| Some(LiveSession { user_id: UserId::parse(&user_id).ok()?, last_seen_at })))
}

pub async fn touch(conn: &Connection, token_hash: &str, now: i64) -> Result<(), libsql::Error> {
    conn.execute("UPDATE sessions SET last_seen_at = ?2 WHERE token_hash = ?1", (token_hash, now)).await?;
    Ok(())
}

/// Deletes the session; returns its user, if there was one.
pub async fn delete(conn: &Connection, token_hash: &str) -> Result<Option<UserId>, libsql::Error> {
    let deleted = first_row(
        conn.query("DELETE FROM sessions WHERE token_hash = ?1 RETURNING user_id", [token_hash]).await?,
        |row| row.get::<String>(0),
    )
    .await?;
    Ok(deleted.and_then(|id| UserId::parse(&id).ok()))
}

pub async fn delete_for_user(conn: &Connection, user_id: &UserId) -> Result<u64, libsql::Error> {
    conn.execute("DELETE FROM sessions WHERE user_id = ?1", [user_id.as_str()]).await
}

/// Deletes every session of the user but `keep` (a token hash); returns the hashes it deleted.
pub async fn delete_others(conn: &Connection, user_id: &UserId, keep: &str) -> Result<Vec<String>, libsql::Error> {
    let mut rows = conn
        .query(
            "DELETE FROM sessions WHERE user_id = ?1 AND token_hash != ?2 RETURNING token_hash",
            (user_id.as_str(), keep),
        )
        .await?;
    let mut hashes = Vec::new();
    while let Some(row) = rows.next().await? {
        hashes.push(row.get::<String>(0)?);
    }
    Ok(hashes)
}

pub async fn delete_expired(conn: &Connection, now: i64, idle_secs: i64) -> Result<u64, libsql::Error> {
    conn.execute("DELETE FROM sessions WHERE expires_at <= ?1 OR last_seen_at + ?2 <= ?1", (now, idle_secs)).await
}
