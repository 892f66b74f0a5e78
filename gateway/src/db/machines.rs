//! The `machines` table: one row per user, written first and updated on every stage.

use provisioner::MachineState;

use crate::db::Db;
use crate::domain::{UserId, now_secs};

pub async fn upsert(
    db: &Db,
    user: &UserId,
    provider: &str,
    state: MachineState,
    stage: &str,
    detail: &str,
) -> Result<(), libsql::Error> {
    let now = now_secs();
    db.conn()?
        .execute(
            "INSERT INTO machines (user_id, provider, state, stage, detail, created_at, updated_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?6)
             ON CONFLICT (user_id) DO UPDATE SET provider = ?2, state = ?3, stage = ?4, detail = ?5, updated_at = ?6",
            (user.as_str(), provider, state.as_str(), stage, detail, now),
        )
        .await?;
    Ok(())
}

pub async fn set_stage(
    db: &Db,
    user: &UserId,
    state: MachineState,
    stage: &str,
    detail: &str,
) -> Result<(), libsql::Error> {
    db.conn()?
        .execute(
            "UPDATE machines SET state = ?2, stage = ?3, detail = ?4, updated_at = ?5 WHERE user_id = ?1",
            (user.as_str(), state.as_str(), stage, detail, now_secs()),
        )
        .await?;
    Ok(())
}

pub async fn set_running(db: &Db, user: &UserId, address: &str, external_id: &str) -> Result<(), libsql::Error> {
    db.conn()?
        .execute(
            "UPDATE machines SET address = ?2, external_id = ?3, state = 'ready', stage = 'ready', updated_at = ?4 WHERE user_id = ?1",
            (user.as_str(), address, external_id, now_secs()),
        )
        .await?;
    Ok(())
}

/// A user's machine row as the API shows it.
pub struct MachineRow {
    pub state: String,
    pub stage: String,
    pub detail: String,
    pub since: i64,
    /// The agent's address while it runs (whichever instance started it).
    pub address: Option<String>,
}

pub async fn find(db: &Db, user: &UserId) -> Result<Option<MachineRow>, libsql::Error> {
    crate::db::first_row(
        db.conn()?
            .query(
                "SELECT state, coalesce(stage, ''), coalesce(detail, ''), updated_at, address FROM machines WHERE user_id = ?1",
                [user.as_str()],
            )
            .await?,
        |row| {
            Ok(MachineRow {
                state: row.get(0)?,
                stage: row.get(1)?,
                detail: row.get(2)?,
                since: row.get(3)?,
                address: row.get(4)?,
            })
        },
    )
    .await
}

/// Users whose row says their agent is up or on its way (`provisioner::lifecycle::claims_up`),
/// with that state, leaving out those whose lease another live instance holds (their agents are
/// that instance's).
pub async fn claiming_up(db: &Db, holder: &str) -> Result<Vec<(UserId, String)>, libsql::Error> {
    let sql = "SELECT user_id, state FROM machines WHERE state IN ('provisioning', 'starting', 'ready', 'stopping')
               AND user_id NOT IN (SELECT user_id FROM machine_leases WHERE holder != ?1 AND expires_at_ms >= ?2)";
    let now_ms = now_secs() * 1000;
    let mut rows = db.conn()?.query(sql, (holder, now_ms)).await?;
    let mut found = Vec::new();
    while let Some(row) = rows.next().await? {
        if let Ok(user) = UserId::parse(&row.get::<String>(0)?) {
            found.push((user, row.get(1)?));
        }
    }
    Ok(found)
}
