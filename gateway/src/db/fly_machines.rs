//! The `fly_machines` table: [`provisioner::fly::FlyStore`] on libSQL. One row per user, each
//! write one statement (the provider saves after every id Fly returns).

use async_trait::async_trait;
use provisioner::fly::{FlyRecord, FlyStore, StoreError, StoredRecord};

use crate::db::Db;
use crate::domain::now_secs;

pub struct DbFlyStore(pub Db);

fn failed(e: libsql::Error) -> StoreError {
    StoreError(e.to_string())
}

const SAVE: &str = "INSERT INTO fly_machines
        (user_id, provision_id, app_name, volume_id, machine_id, region, secrets_version, updated_at)
     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)
     ON CONFLICT (user_id) DO UPDATE SET
        provision_id = excluded.provision_id, app_name = excluded.app_name,
        volume_id = excluded.volume_id, machine_id = excluded.machine_id, region = excluded.region,
        secrets_version = excluded.secrets_version, updated_at = excluded.updated_at";

const COLUMNS: &str = "provision_id, app_name, volume_id, machine_id, region, secrets_version";

fn record(row: &libsql::Row) -> Result<FlyRecord, libsql::Error> {
    Ok(FlyRecord {
        provision_id: row.get(0)?,
        app_name: row.get(1)?,
        volume_id: row.get(2)?,
        machine_id: row.get(3)?,
        region: row.get(4)?,
        // Versions are small counters; a negative one would be a corrupt row.
        secrets_version: row.get::<Option<i64>>(5)?.and_then(|v| u64::try_from(v).ok()),
    })
}

#[async_trait]
impl FlyStore for DbFlyStore {
    async fn load(&self, user_id: &str) -> Result<Option<FlyRecord>, StoreError> {
        let conn = self.0.conn().map_err(failed)?;
        let sql = format!("SELECT {COLUMNS} FROM fly_machines WHERE user_id = ?1");
        let rows = conn.query(&sql, [user_id]).await.map_err(failed)?;
        crate::db::first_row(rows, record).await.map_err(failed)
    }

    async fn list(&self) -> Result<Vec<StoredRecord>, StoreError> {
        let conn = self.0.conn().map_err(failed)?;
        let sql = format!("SELECT {COLUMNS}, user_id, updated_at FROM fly_machines ORDER BY user_id");
        let mut rows = conn.query(&sql, ()).await.map_err(failed)?;
        let mut all = Vec::new();
        while let Some(row) = rows.next().await.map_err(failed)? {
            all.push(StoredRecord {
                record: record(&row).map_err(failed)?,
                user_id: row.get(6).map_err(failed)?,
                updated_at: row.get(7).map_err(failed)?,
            });
        }
        Ok(all)
    }

    async fn failed_rollout(&self, image: &str) -> Result<Option<String>, StoreError> {
        let conn = self.0.conn().map_err(failed)?;
        let rows = conn.query("SELECT reason FROM fly_rollouts WHERE image = ?1", [image]).await.map_err(failed)?;
        crate::db::first_row(rows, |row| row.get::<String>(0)).await.map_err(failed)
    }

    async fn fail_rollout(&self, image: &str, reason: &str) -> Result<(), StoreError> {
        let conn = self.0.conn().map_err(failed)?;
        conn.execute(
            "INSERT INTO fly_rollouts (image, reason, failed_at) VALUES (?1, ?2, ?3)
             ON CONFLICT (image) DO UPDATE SET reason = excluded.reason, failed_at = excluded.failed_at",
            libsql::params![image, reason, now_secs()],
        )
        .await
        .map_err(failed)?;
        Ok(())
    }

    async fn save(&self, user_id: &str, record: &FlyRecord) -> Result<(), StoreError> {
        let conn = self.0.conn().map_err(failed)?;
        let version = record.secrets_version.and_then(|v| i64::try_from(v).ok());
        conn.execute(
            SAVE,
            libsql::params![
                user_id,
                record.provision_id.as_str(),
                record.app_name.as_deref(),
                record.volume_id.as_deref(),
                record.machine_id.as_deref(),
                record.region.as_deref(),
                version,
                now_secs()
            ],
        )
        .await
        .map_err(failed)?;
        Ok(())
    }

    async fn clear(&self, user_id: &str) -> Result<(), StoreError> {
        let conn = self.0.conn().map_err(failed)?;
        conn.execute("DELETE FROM fly_machines WHERE user_id = ?1", [user_id]).await.map_err(failed)?;
        Ok(())
    }
}
