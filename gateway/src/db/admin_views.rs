//! What the operator's admin views read: every account with its machine, balance and last use.

use libsql::Connection;
use serde::Serialize;

#[derive(Debug, Clone, Serialize)]
pub struct UserRow {
    pub id: String,
    pub email: Option<String>,
    pub clerk: bool,
    pub created_at: i64,
    pub is_admin: bool,
    pub suspended_at: Option<i64>,
    pub machine_state: Option<String>,
    pub machine_stage: Option<String>,
    pub machine_detail: Option<String>,
    pub machine_since: Option<i64>,
    pub balance: i64,
    /// The latest of: a session used, an API token used, a model call, a lifecycle change.
    pub last_activity_at: Option<i64>,
}

const USER_ROWS: &str = "SELECT u.id, u.email, u.clerk_user_id IS NOT NULL, u.created_at, u.is_admin, u.suspended_at,
        m.state, m.stage, m.detail, m.updated_at, coalesce(c.balance, 0),
        max(coalesce((SELECT max(last_seen_at) FROM sessions s WHERE s.user_id = u.id), 0),
            coalesce((SELECT max(last_used_at) FROM api_tokens t WHERE t.user_id = u.id), 0),
            coalesce((SELECT max(created_at) FROM usage_events e WHERE e.user_id = u.id), 0),
            coalesce((SELECT max(at) FROM machine_events v WHERE v.user_id = u.id), 0))
   FROM users u LEFT JOIN machines m ON m.user_id = u.id LEFT JOIN credit_accounts c ON c.user_id = u.id
  WHERE u.deleted_at IS NULL";

fn user_row(row: &libsql::Row) -> Result<UserRow, libsql::Error> {
    let last: i64 = row.get(11)?;
    Ok(UserRow {
        id: row.get(0)?,
        email: row.get(1)?,
        clerk: row.get::<i64>(2)? != 0,
        created_at: row.get(3)?,
        is_admin: row.get::<i64>(4)? != 0,
        suspended_at: row.get(5)?,
        machine_state: row.get(6)?,
        machine_stage: row.get(7)?,
        machine_detail: row.get(8)?,
        machine_since: row.get(9)?,
        balance: row.get(10)?,
        last_activity_at: (last > 0).then_some(last),
    })
}

/// Live accounts, oldest first, `limit` from `offset`.
pub async fn users(conn: &Connection, limit: u32, offset: u32) -> Result<Vec<UserRow>, libsql::Error> {
    let sql = format!("{USER_ROWS} ORDER BY u.created_at, u.rowid LIMIT ?1 OFFSET ?2");
    let mut rows = conn.query(&sql, (limit, offset)).await?;
    let mut found = Vec::new();
    while let Some(row) = rows.next().await? {
        found.push(user_row(&row)?);
    }
    Ok(found)
}

pub async fn user(conn: &Connection, id: &str) -> Result<Option<UserRow>, libsql::Error> {
    let sql = format!("{USER_ROWS} AND u.id = ?1");
    super::first_row(conn.query(&sql, [id]).await?, user_row).await
}
