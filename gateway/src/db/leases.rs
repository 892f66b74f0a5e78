//! The `machine_leases` table: [`provisioner::lease::LeaseStore`] on libSQL. Every method is one
//! statement, which SQLite (and Turso) run atomically, so racing instances see one holder.

use std::time::Duration;

use async_trait::async_trait;
use provisioner::lease::{Holder, LeaseStore, Renewed, StopRequest, StoreError, Taken};

use crate::db::Db;

pub struct DbLeases(pub Db);

fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
}

fn failed(e: libsql::Error) -> StoreError {
    StoreError(e.to_string())
}

const TAKE: &str = "INSERT INTO machine_leases (user_id, holder, version, expires_at_ms) VALUES (?1, ?2, 1, ?3)
     ON CONFLICT (user_id) DO UPDATE SET
        holder = excluded.holder,
        version = machine_leases.version + 1,
        expires_at_ms = excluded.expires_at_ms,
        active_at_ms = CASE WHEN machine_leases.holder = excluded.holder THEN machine_leases.active_at_ms END,
        request = CASE WHEN machine_leases.holder = excluded.holder THEN machine_leases.request END,
        request_reason = CASE WHEN machine_leases.holder = excluded.holder THEN machine_leases.request_reason END
     WHERE machine_leases.holder = excluded.holder OR machine_leases.expires_at_ms < ?4
     RETURNING version";

const RENEW: &str = "UPDATE machine_leases SET expires_at_ms = ?2
     WHERE holder = ?1 AND (user_id, version) IN
        (SELECT json_extract(value, '$[0]'), json_extract(value, '$[1]') FROM json_each(?3))
     RETURNING user_id, active_at_ms, request, request_reason";

fn holder_of_row(row: &libsql::Row) -> Result<Holder, libsql::Error> {
    Ok(Holder { name: row.get(0)?, version: row.get(1)? })
}

#[async_trait]
impl LeaseStore for DbLeases {
    async fn take(&self, user_id: &str, holder: &str, ttl: Duration) -> Result<Taken, StoreError> {
        let now = now_ms();
        let conn = self.0.conn().map_err(failed)?;
        let rows = conn.query(TAKE, (user_id, holder, now + ttl.as_millis() as i64, now)).await.map_err(failed)?;
        if let Some(version) = crate::db::first_row(rows, |row| row.get::<i64>(0)).await.map_err(failed)? {
            return Ok(Taken::Mine { version });
        }
        match self.holder(user_id).await? {
            Some(holder) => Ok(Taken::HeldBy { holder: holder.name }),
            // Released between the two statements: free now, but the caller takes it again.
            None => Ok(Taken::HeldBy { holder: String::new() }),
        }
    }

    async fn renew(&self, holder: &str, held: &[(String, i64)], ttl: Duration) -> Result<Vec<Renewed>, StoreError> {
        let pairs = serde_json::to_string(held).map_err(|e| StoreError(e.to_string()))?;
        let conn = self.0.conn().map_err(failed)?;
        let mut rows = conn.query(RENEW, (holder, now_ms() + ttl.as_millis() as i64, pairs)).await.map_err(failed)?;
        let mut renewed = Vec::with_capacity(held.len());
        while let Some(row) = rows.next().await.map_err(failed)? {
            let request: Option<String> = row.get(2).map_err(failed)?;
            let reason: Option<String> = row.get(3).map_err(failed)?;
            renewed.push(Renewed {
                user_id: row.get(0).map_err(failed)?,
                active_elsewhere_at_ms: row.get(1).map_err(failed)?,
                stop_request: (request.as_deref() == Some("stop"))
                    .then(|| StopRequest { reason: reason.unwrap_or_else(|| "stopped".into()) }),
            });
        }
        Ok(renewed)
    }

    async fn release(&self, user_id: &str, holder: &str, version: i64) -> Result<(), StoreError> {
        let conn = self.0.conn().map_err(failed)?;
        conn.execute(
            // The row stays, lapsed, so versions only ever grow (deleting the account removes it).
            "UPDATE machine_leases SET expires_at_ms = 0, request = NULL, request_reason = NULL
             WHERE user_id = ?1 AND holder = ?2 AND version = ?3",
            (user_id, holder, version),
        )
        .await
        .map_err(failed)?;
        Ok(())
    }

    async fn holder(&self, user_id: &str) -> Result<Option<Holder>, StoreError> {
        let conn = self.0.conn().map_err(failed)?;
        let rows = conn
            .query(
                "SELECT holder, version FROM machine_leases WHERE user_id = ?1 AND expires_at_ms >= ?2",
                (user_id, now_ms()),
            )
            .await
            .map_err(failed)?;
        crate::db::first_row(rows, holder_of_row).await.map_err(failed)
    }

    async fn request_stop(&self, user_id: &str, asker: &str, reason: &str) -> Result<Option<Holder>, StoreError> {
        let conn = self.0.conn().map_err(failed)?;
        let rows = conn
            .query(
                "UPDATE machine_leases SET request = 'stop', request_reason = ?3
                 WHERE user_id = ?1 AND holder != ?2 AND expires_at_ms >= ?4
                 RETURNING holder, version",
                (user_id, asker, reason, now_ms()),
            )
            .await
            .map_err(failed)?;
        crate::db::first_row(rows, holder_of_row).await.map_err(failed)
    }

    async fn mark_active(&self, asker: &str, user_ids: &[String]) -> Result<(), StoreError> {
        let users = serde_json::to_string(user_ids).map_err(|e| StoreError(e.to_string()))?;
        let conn = self.0.conn().map_err(failed)?;
        conn.execute(
            "UPDATE machine_leases SET active_at_ms = ?2
             WHERE holder != ?1 AND user_id IN (SELECT value FROM json_each(?3))",
            (asker, now_ms(), users),
        )
        .await
        .map_err(failed)?;
        Ok(())
    }
}

/// Users whose lease another instance holds, or held until less than `grace` ago: their agents
/// are that instance's. The grace keeps a starting instance from ending the agents of one whose
/// renewal is merely late (a busy machine, a slow disk); an agent truly left behind is ended
/// when its user's lease is taken over.
pub async fn held_elsewhere(
    db: &Db,
    holder: &str,
    grace: std::time::Duration,
) -> Result<Vec<crate::domain::UserId>, libsql::Error> {
    let since = now_ms() - grace.as_millis() as i64;
    let rows = db
        .conn()?
        .query("SELECT user_id FROM machine_leases WHERE holder != ?1 AND expires_at_ms >= ?2", (holder, since))
        .await?;
    crate::db::user_ids(rows).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use provisioner::lease::Leases;

    use crate::db::migrated_temp_db as db;

    fn leases(db: &Db, name: &str, ttl: Duration) -> Leases {
        Leases::new(Box::new(DbLeases(db.clone())), name.into(), ttl)
    }

    #[tokio::test]
    async fn one_holder_until_it_lets_go_or_lapses() {
        let (_dir, db) = db().await;
        let a = leases(&db, "a", Duration::from_secs(30));
        let b = leases(&db, "b", Duration::from_secs(30));
        assert_eq!(a.take("u1").await.unwrap(), Taken::Mine { version: 1 });
        assert_eq!(b.take("u1").await.unwrap(), Taken::HeldBy { holder: "a".into() });
        // Taking it again as its holder is fine, and fences the older version.
        assert_eq!(a.take("u1").await.unwrap(), Taken::Mine { version: 2 });
        a.release("u1").await;
        assert_eq!(b.take("u1").await.unwrap(), Taken::Mine { version: 3 });
        assert_eq!(b.holder_of("u1").await.unwrap(), Some(Holder { name: "b".into(), version: 3 }));

        let brief = leases(&db, "brief", Duration::from_millis(0));
        assert!(matches!(brief.take("u2").await.unwrap(), Taken::Mine { .. }));
        tokio::time::sleep(Duration::from_millis(5)).await;
        assert_eq!(a.take("u2").await.unwrap(), Taken::Mine { version: 2 }, "a lapsed lease is taken over");
        let round = brief.renew().await.unwrap();
        assert_eq!(round.lost, vec!["u2".to_string()], "the old holder learns it lost the lease");
        assert!(!brief.holds("u2"));
        brief.release("u2").await;
        assert_eq!(a.holder_of("u2").await.unwrap().map(|h| h.name).as_deref(), Some("a"), "and cannot release it");
    }

    #[tokio::test]
    async fn the_holder_hears_of_stop_requests_and_activity_elsewhere() {
        let (_dir, db) = db().await;
        let a = leases(&db, "a", Duration::from_secs(30));
        let b = leases(&db, "b", Duration::from_secs(30));
        assert_eq!(b.request_stop("u1", "stopped by you").await.unwrap(), None, "nobody holds it");
        a.take("u1").await.unwrap();
        a.take("u3").await.unwrap();
        assert_eq!(a.request_stop("u1", "x").await.unwrap(), None, "a holder does not ask itself");
        assert_eq!(
            b.request_stop("u1", "stopped by you").await.unwrap(),
            Some(Holder { name: "a".into(), version: 1 })
        );
        b.mark_active(&["u3".to_string(), "nobody".to_string()]).await.unwrap();
        let mut round = a.renew().await.unwrap();
        round.renewed.sort_by(|x, y| x.user_id.cmp(&y.user_id));
        assert!(round.lost.is_empty());
        assert_eq!(round.renewed.len(), 2);
        assert_eq!(round.renewed[0].stop_request, Some(StopRequest { reason: "stopped by you".into() }));
        assert_eq!(round.renewed[0].active_elsewhere_at_ms, None);
        assert_eq!(round.renewed[1].stop_request, None);
        assert!(round.renewed[1].active_elsewhere_at_ms.is_some());
        assert_eq!(
            held_elsewhere(&db, "b", Duration::ZERO).await.unwrap().len(),
            0,
            "ids that are not user ids are skipped"
        );
    }
}
