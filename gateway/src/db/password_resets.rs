//! `password_resets` (migration 0012): one-time links that set a new password. Only the SHA-256
//! of the token is stored; a token is used at most once, before it expires.

use libsql::{Connection, TransactionBehavior};

use super::first_row;
use crate::domain::UserId;

/// Unused links one account may hold at once; older ones are dropped when a new one is made.
const KEEP_PER_USER: u32 = 5;

pub async fn create(
    conn: &Connection,
    user: &UserId,
    token_hash: &str,
    now: i64,
    expires_at: i64,
) -> Result<(), libsql::Error> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate).await?;
    tx.execute(
        "INSERT INTO password_resets (token_hash, user_id, created_at, expires_at) VALUES (?1, ?2, ?3, ?4)",
        (token_hash, user.as_str(), now, expires_at),
    )
    .await?;
    tx.execute(
        "DELETE FROM password_resets WHERE user_id = ?1 AND (used_at IS NOT NULL OR expires_at <= ?3 OR token_hash NOT IN
           (SELECT token_hash FROM password_resets WHERE user_id = ?1 ORDER BY created_at DESC, rowid DESC LIMIT ?2))",
        (user.as_str(), KEEP_PER_USER, now),
    )
    .await?;
    tx.commit().await
}

/// The live local account a usable token resets, without using it.
pub async fn peek(conn: &Connection, token_hash: &str, now: i64) -> Result<Option<UserId>, libsql::Error> {
    let rows = conn
        .query(
            "SELECT r.user_id FROM password_resets r JOIN users u ON u.id = r.user_id
              WHERE r.token_hash = ?1 AND r.used_at IS NULL AND r.expires_at > ?2
                AND u.deleted_at IS NULL AND u.password_hash IS NOT NULL",
            (token_hash, now),
        )
        .await?;
    let found = first_row(rows, |row| row.get::<String>(0)).await?;
    Ok(found.and_then(|id| UserId::parse(&id).ok()))
}

/// Uses the token: sets the password hash, marks every link of the account used and deletes
/// every session, in one transaction. Returns the user and the ended sessions' hashes, or
/// `None` if the token was not usable.
pub async fn redeem(
    conn: &Connection,
    token_hash: &str,
    password_hash: &str,
    now: i64,
) -> Result<Option<(UserId, Vec<String>)>, libsql::Error> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate).await?;
    let Some(user) = peek(&tx, token_hash, now).await? else {
        tx.rollback().await?;
        return Ok(None);
    };
    tx.execute("UPDATE password_resets SET used_at = ?2 WHERE user_id = ?1 AND used_at IS NULL", (user.as_str(), now))
        .await?;
    tx.execute("UPDATE users SET password_hash = ?2 WHERE id = ?1", (user.as_str(), password_hash)).await?;
    let mut rows = tx.query("DELETE FROM sessions WHERE user_id = ?1 RETURNING token_hash", [user.as_str()]).await?;
    let mut ended = Vec::new();
    while let Some(row) = rows.next().await? {
        ended.push(row.get::<String>(0)?);
    }
    drop(rows);
    tx.commit().await?;
    Ok(Some((user, ended)))
}
