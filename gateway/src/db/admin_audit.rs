//! `admin_audit` (migration 0012): every admin action, from the API or `roost admin`, and every
//! refused attempt at one. Only ever appended to.

use libsql::Connection;
use serde::Serialize;

/// Who acted: an account, or the operator at the server's command line.
#[derive(Clone, Copy)]
pub enum Actor<'a> {
    User(&'a crate::domain::UserId),
    Cli,
}

pub struct Entry<'a> {
    pub actor: Actor<'a>,
    pub action: &'a str,
    pub target_user_id: Option<&'a str>,
    pub detail: &'a str,
    pub allowed: bool,
}

/// Detail text is capped so a caller cannot grow a row without bound.
const MAX_DETAIL: usize = 1000;

pub async fn append(conn: &Connection, entry: &Entry<'_>, now: i64) -> Result<(), libsql::Error> {
    let actor = match &entry.actor {
        Actor::User(id) => id.as_str(),
        Actor::Cli => "cli",
    };
    let detail: String = entry.detail.chars().take(MAX_DETAIL).collect();
    conn.execute(
        "INSERT INTO admin_audit (at, actor, action, target_user_id, detail, allowed) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        (now, actor, entry.action, entry.target_user_id, detail, i64::from(entry.allowed)),
    )
    .await?;
    Ok(())
}

#[derive(Debug, Clone, Serialize)]
pub struct Row {
    pub id: i64,
    pub at: i64,
    pub actor: String,
    pub actor_email: Option<String>,
    pub action: String,
    pub target_user_id: Option<String>,
    pub detail: String,
    pub allowed: bool,
}

/// The newest rows first, at most `limit`, optionally only those about one user.
pub async fn recent(conn: &Connection, target: Option<&str>, limit: u32) -> Result<Vec<Row>, libsql::Error> {
    let mut rows = conn
        .query(
            "SELECT a.id, a.at, a.actor, u.email, a.action, a.target_user_id, a.detail, a.allowed
               FROM admin_audit a LEFT JOIN users u ON u.id = a.actor
              WHERE ?1 IS NULL OR a.target_user_id = ?1 ORDER BY a.id DESC LIMIT ?2",
            (target, limit),
        )
        .await?;
    let mut found = Vec::new();
    while let Some(row) = rows.next().await? {
        found.push(Row {
            id: row.get(0)?,
            at: row.get(1)?,
            actor: row.get(2)?,
            actor_email: row.get(3)?,
            action: row.get(4)?,
            target_user_id: row.get(5)?,
            detail: row.get(6)?,
            allowed: row.get::<i64>(7)? != 0,
        });
    }
    Ok(found)
}
