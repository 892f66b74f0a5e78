//! `invite_codes` (migration 0012): codes an admin hands out; each lets `uses` accounts in
//! before `expires_at`. Only the SHA-256 of a code is stored.

use libsql::Connection;
use serde::Serialize;

use super::first_row;

pub struct NewInvite<'a> {
    pub id: &'a str,
    pub code_hash: &'a str,
    pub uses: u32,
    pub expires_at: Option<i64>,
    pub created_by: &'a str,
    pub now: i64,
}

/// Invite codes kept at once; an admin revokes old ones to make more.
pub const MAX_LIVE: i64 = 1000;

/// Creates the invite unless [`MAX_LIVE`] unspent ones exist already; true if created.
pub async fn create(conn: &Connection, new: &NewInvite<'_>) -> Result<bool, libsql::Error> {
    let inserted = conn
        .execute(
            "INSERT INTO invite_codes (id, code_hash, uses, uses_left, expires_at, created_by, created_at)
             SELECT ?1, ?2, ?3, ?3, ?4, ?5, ?6
             WHERE (SELECT count(*) FROM invite_codes WHERE revoked_at IS NULL AND uses_left > 0) < ?7",
            (new.id, new.code_hash, i64::from(new.uses), new.expires_at, new.created_by, new.now, MAX_LIVE),
        )
        .await?;
    Ok(inserted > 0)
}

/// Takes one use of a live code, inside the caller's transaction. False if the code is
/// unknown, used up, expired or revoked.
pub async fn take_one(tx: &Connection, code_hash: &str, now: i64) -> Result<bool, libsql::Error> {
    let changed = tx
        .execute(
            "UPDATE invite_codes SET uses_left = uses_left - 1
              WHERE code_hash = ?1 AND uses_left > 0 AND revoked_at IS NULL
                AND (expires_at IS NULL OR expires_at > ?2)",
            (code_hash, now),
        )
        .await?;
    Ok(changed > 0)
}

#[derive(Debug, Clone, Serialize)]
pub struct Invite {
    pub id: String,
    pub uses: i64,
    pub uses_left: i64,
    pub expires_at: Option<i64>,
    pub created_by: String,
    pub created_at: i64,
    pub revoked_at: Option<i64>,
}

/// The newest invites first, at most `limit`.
pub async fn list(conn: &Connection, limit: u32) -> Result<Vec<Invite>, libsql::Error> {
    let mut rows = conn
        .query(
            "SELECT id, uses, uses_left, expires_at, created_by, created_at, revoked_at FROM invite_codes
              ORDER BY created_at DESC, id LIMIT ?1",
            [limit],
        )
        .await?;
    let mut found = Vec::new();
    while let Some(row) = rows.next().await? {
        found.push(Invite {
            id: row.get(0)?,
            uses: row.get(1)?,
            uses_left: row.get(2)?,
            expires_at: row.get(3)?,
            created_by: row.get(4)?,
            created_at: row.get(5)?,
            revoked_at: row.get(6)?,
        });
    }
    Ok(found)
}

/// Revokes an unrevoked invite; false if there is none with this id.
pub async fn revoke(conn: &Connection, id: &str, now: i64) -> Result<bool, libsql::Error> {
    let changed =
        conn.execute("UPDATE invite_codes SET revoked_at = ?2 WHERE id = ?1 AND revoked_at IS NULL", (id, now)).await?;
    Ok(changed > 0)
}

pub async fn find(conn: &Connection, id: &str) -> Result<Option<Invite>, libsql::Error> {
    let rows = conn
        .query(
            "SELECT id, uses, uses_left, expires_at, created_by, created_at, revoked_at FROM invite_codes WHERE id = ?1",
            [id],
        )
        .await?;
    first_row(rows, |row| {
        Ok(Invite {
            id: row.get(0)?,
            uses: row.get(1)?,
            uses_left: row.get(2)?,
            expires_at: row.get(3)?,
            created_by: row.get(4)?,
            created_at: row.get(5)?,
            revoked_at: row.get(6)?,
        })
    })
    .await
}
