use libsql::Connection;
use serde::Serialize;

use super::first_row;
use crate::domain::UserId;

#[derive(Debug, Serialize)]
pub struct ApiToken {
    pub id: String,
    pub name: String,
    pub prefix: String,
    pub created_at: i64,
    pub expires_at: Option<i64>,
    pub last_used_at: Option<i64>,
}

pub struct NewToken<'a> {
    pub id: &'a str,
    pub user_id: &'a UserId,
    pub name: &'a str,
    pub prefix: &'a str,
    pub token_hash: &'a str,
    pub created_at: i64,
    pub expires_at: Option<i64>,
}

/// Unrevoked tokens a user may hold.
pub const MAX_PER_USER: i64 = 50;

/// Creates the token unless the user holds [`MAX_PER_USER`] already, checked in the same
/// statement; returns whether it was created.
pub async fn create(conn: &Connection, t: NewToken<'_>) -> Result<bool, libsql::Error> {
    let inserted = conn
        .execute(
            "INSERT INTO api_tokens (id, user_id, name, prefix, token_hash, created_at, expires_at)
             SELECT ?1, ?2, ?3, ?4, ?5, ?6, ?7
             WHERE (SELECT count(*) FROM api_tokens WHERE user_id = ?2 AND revoked_at IS NULL) < ?8",
            (t.id, t.user_id.as_str(), t.name, t.prefix, t.token_hash, t.created_at, t.expires_at, MAX_PER_USER),
        )
        .await?;
    Ok(inserted > 0)
}

pub async fn list(conn: &Connection, user_id: &UserId) -> Result<Vec<ApiToken>, libsql::Error> {
    let mut rows = conn
        .query(
            "SELECT id, name, prefix, created_at, expires_at, last_used_at FROM api_tokens
             WHERE user_id = ?1 AND revoked_at IS NULL ORDER BY created_at DESC, id",
            [user_id.as_str()],
        )
        .await?;
    let mut tokens = Vec::new();
    while let Some(row) = rows.next().await? {
        tokens.push(ApiToken {
            id: row.get(0)?,
            name: row.get(1)?,
            prefix: row.get(2)?,
            created_at: row.get(3)?,
            expires_at: row.get(4)?,
            last_used_at: row.get(5)?,
        });
    }
    Ok(tokens)
}

pub struct TokenOwner {
    pub token_id: String,
    pub user_id: UserId,
    pub last_used_at: Option<i64>,
    /// The owner's account is suspended: the token stays, but authorizes nothing meanwhile.
    pub suspended: bool,
}

/// The owner of a live (unrevoked, unexpired) token with this hash.
pub async fn find_live(conn: &Connection, token_hash: &str, now: i64) -> Result<Option<TokenOwner>, libsql::Error> {
    let row = first_row(
        conn.query(
            "SELECT t.id, t.user_id, t.last_used_at, u.suspended_at IS NOT NULL FROM api_tokens t JOIN users u ON u.id = t.user_id
             WHERE t.token_hash = ?1 AND t.revoked_at IS NULL AND (t.expires_at IS NULL OR t.expires_at > ?2)
               AND u.deleted_at IS NULL",
            (token_hash, now),
        )
        .await?,
        |row| Ok((row.get::<String>(0)?, row.get::<String>(1)?, row.get::<Option<i64>>(2)?, row.get::<i64>(3)?)),
    )
    .await?;
    Ok(row.and_then(|(token_id, user_id, last_used_at, suspended)| {
        Some(TokenOwner { token_id, user_id: UserId::parse(&user_id).ok()?, last_used_at, suspended: suspended != 0 })
    }))
}

pub async fn touch(conn: &Connection, token_id: &str, now: i64) -> Result<(), libsql::Error> {
    conn.execute("UPDATE api_tokens SET last_used_at = ?2 WHERE id = ?1", (token_id, now)).await?;
    Ok(())
}

/// Revokes one of the user's own tokens. `false` if it does not exist or belongs to someone else.
pub async fn revoke(conn: &Connection, user_id: &UserId, token_id: &str, now: i64) -> Result<bool, libsql::Error> {
    let changed = conn
        .execute(
            "UPDATE api_tokens SET revoked_at = ?3 WHERE id = ?1 AND user_id = ?2 AND revoked_at IS NULL",
            (token_id, user_id.as_str(), now),
        )
        .await?;
    Ok(changed > 0)
}

pub async fn revoke_all(conn: &Connection, user_id: &UserId, now: i64) -> Result<u64, libsql::Error> {
    conn.execute(
        "UPDATE api_tokens SET revoked_at = ?2 WHERE user_id = ?1 AND revoked_at IS NULL",
        (user_id.as_str(), now),
    )
    .await
}

/// Stores the token's sealed webhook signing secret (replacing any earlier one). False if the
/// token is not one of the user's live tokens.
pub async fn set_webhook_secret(
    conn: &Connection,
    user_id: &UserId,
    token_id: &str,
    sealed: &[u8],
    key_version: i64,
) -> Result<bool, libsql::Error> {
    let changed = conn
        .execute(
            "UPDATE api_tokens SET webhook_secret_sealed = ?3, webhook_key_version = ?4
             WHERE id = ?1 AND user_id = ?2 AND revoked_at IS NULL",
            (token_id, user_id.as_str(), sealed.to_vec(), key_version),
        )
        .await?;
    Ok(changed > 0)
}

/// The token's sealed webhook secret and its key version, if it has one (revoked tokens keep
/// theirs, so the webhooks of their tasks are still signed).
pub async fn webhook_secret(conn: &Connection, token_id: &str) -> Result<Option<(Vec<u8>, i64)>, libsql::Error> {
    let row = first_row(
        conn.query(
            "SELECT webhook_secret_sealed, webhook_key_version FROM api_tokens
             WHERE id = ?1 AND webhook_secret_sealed IS NOT NULL",
            [token_id],
        )
        .await?,
        |row| Ok((row.get::<Vec<u8>>(0)?, row.get::<i64>(1)?)),
    )
    .await?;
    Ok(row)
}
