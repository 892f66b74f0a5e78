//! `user_llm_keys`: a user's own model provider key, sealed, with what is shown of it.

use libsql::Connection;

use crate::domain::UserId;

pub struct StoredKey {
    pub provider: String,
    pub key_sealed: Vec<u8>,
    pub key_version: i64,
    pub last4: String,
    pub model: String,
    pub created_at: i64,
    pub failing_since: Option<i64>,
}

pub async fn find(conn: &Connection, user: &UserId) -> Result<Option<StoredKey>, libsql::Error> {
    let rows = conn
        .query(
            "SELECT provider, key_sealed, key_version, last4, model, created_at, failing_since \
             FROM user_llm_keys WHERE user_id = ?1",
            [user.as_str()],
        )
        .await?;
    super::first_row(rows, |row| {
        Ok(StoredKey {
            provider: row.get(0)?,
            key_sealed: row.get(1)?,
            key_version: row.get(2)?,
            last4: row.get(3)?,
            model: row.get(4)?,
            created_at: row.get(5)?,
            failing_since: row.get(6)?,
        })
    })
    .await
}

/// Saves the user's key, replacing any earlier one (a replaced key starts out working).
pub async fn upsert(conn: &Connection, user: &UserId, key: &StoredKey) -> Result<(), libsql::Error> {
    conn.execute(
        "INSERT INTO user_llm_keys (user_id, provider, key_sealed, key_version, last4, model, created_at, failing_since)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, NULL)
         ON CONFLICT (user_id) DO UPDATE SET provider = excluded.provider, key_sealed = excluded.key_sealed,
           key_version = excluded.key_version, last4 = excluded.last4, model = excluded.model,
           created_at = excluded.created_at, failing_since = NULL",
        libsql::params![
            user.as_str(),
            key.provider.as_str(),
            key.key_sealed.clone(),
            key.key_version,
            key.last4.as_str(),
            key.model.as_str(),
            key.created_at,
        ],
    )
    .await?;
    Ok(())
}

/// True if the user had a key.
pub async fn delete(conn: &Connection, user: &UserId) -> Result<bool, libsql::Error> {
    Ok(conn.execute("DELETE FROM user_llm_keys WHERE user_id = ?1", [user.as_str()]).await? > 0)
}

/// Marks the key failing since `at`, or working again (`None`). Only the sealed value it was
/// read with is touched, so a key replaced in the meantime keeps its own state.
pub async fn set_failing(
    conn: &Connection,
    user: &UserId,
    key_sealed: &[u8],
    at: Option<i64>,
) -> Result<(), libsql::Error> {
    conn.execute(
        "UPDATE user_llm_keys SET failing_since = ?3 WHERE user_id = ?1 AND key_sealed = ?2",
        libsql::params![user.as_str(), key_sealed.to_vec(), at],
    )
    .await?;
    Ok(())
}
