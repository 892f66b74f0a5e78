//! `machine_events`: each user's lifecycle history, the state changes of their machine with when
//! and why. Only the newest [`KEEP_PER_USER`] are kept (trimmed in the write that adds one), and
//! they go with the account.

use libsql::TransactionBehavior;

use crate::db::{Db, first_row};
use crate::domain::UserId;

/// Enough for a user to see what happened over the last days; an agent in a crash-restart loop
/// cannot grow the table.
pub const KEEP_PER_USER: u32 = 50;

/// One change, as written and as the API shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MachineEvent {
    /// Unix seconds.
    pub at: i64,
    pub state: String,
    pub stage: String,
    pub reason: String,
}

/// Appends `event` if the account is live and `wanted` agrees, given the state of the user's
/// latest event (`None`: no history yet), then trims the user's history. Read, insert and trim
/// are one transaction, so the latest event cannot change between the check and the insert.
/// True if it was written.
pub async fn append(
    db: &Db,
    user: &UserId,
    event: &MachineEvent,
    wanted: impl FnOnce(Option<&str>) -> bool,
) -> Result<bool, libsql::Error> {
    let conn = db.conn()?;
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate).await?;
    let id = user.as_str();
    // A deleted account gets no history (its destroy still reports stages).
    let live = first_row(tx.query("SELECT 1 FROM users WHERE id = ?1 AND deleted_at IS NULL", [id]).await?, |_| Ok(()))
        .await?
        .is_some();
    let latest = first_row(
        tx.query("SELECT state FROM machine_events WHERE user_id = ?1 ORDER BY id DESC LIMIT 1", [id]).await?,
        |row| row.get::<String>(0),
    )
    .await?;
    if !live || !wanted(latest.as_deref()) {
        tx.rollback().await?;
        return Ok(false);
    }
    tx.execute(
        "INSERT INTO machine_events (user_id, at, state, stage, reason) VALUES (?1, ?2, ?3, ?4, ?5)",
        (id, event.at, event.state.as_str(), event.stage.as_str(), event.reason.as_str()),
    )
    .await?;
    tx.execute(
        "DELETE FROM machine_events WHERE user_id = ?1 AND id NOT IN \
         (SELECT id FROM machine_events WHERE user_id = ?1 ORDER BY id DESC LIMIT ?2)",
        (id, KEEP_PER_USER),
    )
    .await?;
    tx.commit().await?;
    Ok(true)
}

/// The user's newest `limit` events, newest first.
pub async fn recent(db: &Db, user: &UserId, limit: u32) -> Result<Vec<MachineEvent>, libsql::Error> {
    let conn = db.conn()?;
    let mut rows = conn
        .query(
            "SELECT at, state, stage, reason FROM machine_events WHERE user_id = ?1 ORDER BY id DESC LIMIT ?2",
            (user.as_str(), limit),
        )
        .await?;
    let mut events = Vec::new();
    while let Some(row) = rows.next().await? {
        events.push(MachineEvent { at: row.get(0)?, state: row.get(1)?, stage: row.get(2)?, reason: row.get(3)? });
    }
    Ok(events)
}

/// How long the server's most recent `limit` starts took, in seconds, newest first: from each
/// start's first event (provisioning or starting) to the ready that followed it, for any user.
/// Only the newest few thousand events are looked at, so it stays cheap on a big table.
pub async fn recent_start_secs(db: &Db, limit: u32) -> Result<Vec<i64>, libsql::Error> {
    let conn = db.conn()?;
    let mut rows = conn
        .query(
            "SELECT at - prev_at FROM (                SELECT id, at, state,                  LAG(state) OVER (PARTITION BY user_id ORDER BY id) AS prev_state,                  LAG(at) OVER (PARTITION BY user_id ORDER BY id) AS prev_at                FROM machine_events WHERE id > (SELECT COALESCE(MAX(id), 0) - 5000 FROM machine_events)              ) WHERE state = 'ready' AND prev_state IN ('provisioning', 'starting') AND at >= prev_at              ORDER BY id DESC LIMIT ?1",
            [limit],
        )
        .await?;
    let mut secs = Vec::new();
    while let Some(row) = rows.next().await? {
        secs.push(row.get(0)?);
    }
    Ok(secs)
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn db_with_user() -> (tempfile::TempDir, Db, UserId) {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(dir.path().join("t.db").to_str().unwrap(), None).await.unwrap();
        crate::db::migrate::run(&db).await.unwrap();
        let user = UserId::generate();
        db.conn().unwrap().execute("INSERT INTO users (id, created_at) VALUES (?1, 0)", [user.as_str()]).await.unwrap();
        (dir, db, user)
    }

    fn event(n: i64) -> MachineEvent {
        MachineEvent { at: n, state: "ready".into(), stage: "ready".into(), reason: format!("event {n}") }
    }

    #[tokio::test]
    async fn only_the_newest_events_of_each_user_are_kept() {
        let (_dir, db, user) = db_with_user().await;
        let total = i64::from(KEEP_PER_USER) + 7;
        for n in 0..total {
            assert!(append(&db, &user, &event(n), |_| true).await.unwrap());
        }
        let kept = recent(&db, &user, KEEP_PER_USER * 2).await.unwrap();
        assert_eq!(kept.len(), KEEP_PER_USER as usize);
        assert_eq!(kept.first().map(|e| e.at), Some(total - 1), "newest first");
        assert_eq!(kept.last().map(|e| e.at), Some(total - i64::from(KEEP_PER_USER)), "the oldest went");
        assert_eq!(recent(&db, &user, 3).await.unwrap().len(), 3);
    }

    #[tokio::test]
    async fn the_check_sees_the_latest_state_and_deleted_accounts_get_nothing() {
        let (_dir, db, user) = db_with_user().await;
        assert!(append(&db, &user, &event(1), |latest| latest.is_none()).await.unwrap());
        assert!(!append(&db, &user, &event(2), |latest| latest != Some("ready")).await.unwrap());
        assert_eq!(recent(&db, &user, 10).await.unwrap(), vec![event(1)]);

        let conn = db.conn().unwrap();
        assert!(crate::db::deletion::delete_account(&conn, &user).await.unwrap());
        assert!(recent(&db, &user, 10).await.unwrap().is_empty(), "deleted with the account");
        assert!(!append(&db, &user, &event(3), |_| true).await.unwrap());
        assert!(recent(&db, &user, 10).await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn start_durations_pair_each_start_with_its_ready() {
        let (_dir, db, user) = db_with_user().await;
        let conn = db.conn().unwrap();
        let other = UserId::generate();
        conn.execute("INSERT INTO users (id, created_at) VALUES (?1, 0)", [other.as_str()]).await.unwrap();
        let put = |u: &UserId, at: i64, state: &str| {
            let e = MachineEvent { at, state: state.into(), stage: state.into(), reason: String::new() };
            let (db, u) = (db.clone(), u.clone());
            async move { append(&db, &u, &e, |_| true).await.unwrap() }
        };
        put(&user, 100, "starting").await;
        put(&other, 101, "provisioning").await;
        put(&user, 112, "ready").await; // 12 s
        put(&other, 131, "ready").await; // 30 s
        put(&user, 200, "idle_stopped").await;
        put(&user, 300, "ready").await; // not a start: it followed a stop event
        put(&user, 400, "starting").await;
        put(&user, 420, "failed").await; // a failed start is no duration
        assert_eq!(recent_start_secs(&db, 10).await.unwrap(), vec![30, 12]);
        assert_eq!(recent_start_secs(&db, 1).await.unwrap(), vec![30]);
    }
}
