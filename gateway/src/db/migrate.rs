//! Numbered `.sql` files from `migrations/`, embedded, each applied once in its own transaction.

use anyhow::Context;
use libsql::TransactionBehavior;

use super::Db;
use crate::domain::now_secs;

pub const MIGRATIONS: &[(&str, &str)] = &[
    (
        "0001_accounts",
        include_str!("../../../migrations/0001_accounts.sql"),
    ),
    (
        "0002_agents",
        include_str!("../../../migrations/0002_agents.sql"),
    ),
];

/// Applies pending migrations in order and returns the names of those it applied.
pub async fn run(db: &Db) -> anyhow::Result<Vec<&'static str>> {
    let conn = db.conn()?;
    conn.execute(
        "CREATE TABLE IF NOT EXISTS schema_migrations (version TEXT PRIMARY KEY, applied_at INTEGER NOT NULL)",
        (),
    )
    .await?;
    let mut applied = Vec::new();
    for (version, sql) in MIGRATIONS {
        let mut rows = conn
            .query(
                "SELECT 1 FROM schema_migrations WHERE version = ?1",
                [*version],
            )
            .await?;
        if rows.next().await?.is_some() {
            continue;
        }
        drop(rows);
        let record = format!(
            "INSERT INTO schema_migrations (version, applied_at) VALUES ('{version}', {});",
            now_secs()
        );
        if db.is_local() {
            let tx = conn
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .await?;
            tx.execute_batch(sql)
                .await
                .with_context(|| format!("migration {version} failed"))?;
            tx.execute_batch(&record).await?;
            tx.commit().await?;
        } else {
            // A remote transaction is a round trip per statement; one batch is one round trip.
            conn.execute_transactional_batch(&format!("{sql}\n{record}"))
                .await
                .with_context(|| format!("migration {version} failed"))?;
        }
        tracing::info!(version, "applied migration");
        applied.push(*version);
    }
    Ok(applied)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_migration_file_is_embedded_in_order() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../migrations");
        let mut files: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .filter(|n| n.ends_with(".sql"))
            .map(|n| n.trim_end_matches(".sql").to_string())
            .collect();
        files.sort();
        let embedded: Vec<&str> = MIGRATIONS.iter().map(|(v, _)| *v).collect();
        assert_eq!(files, embedded);
    }

    #[tokio::test]
    async fn migrating_twice_applies_each_file_once() {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(dir.path().join("t.db").to_str().unwrap(), None)
            .await
            .unwrap();
        assert_eq!(run(&db).await.unwrap().len(), MIGRATIONS.len());
        assert!(run(&db).await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn a_failing_migration_leaves_nothing_behind() {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(dir.path().join("t.db").to_str().unwrap(), None)
            .await
            .unwrap();
        let conn = db.conn().unwrap();
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .await
            .unwrap();
        assert!(
            tx.execute_batch("CREATE TABLE half (x); THIS IS NOT SQL;")
                .await
                .is_err()
        );
        tx.rollback().await.unwrap();
        let mut rows = conn
            .query("SELECT name FROM sqlite_master WHERE name = 'half'", ())
            .await
            .unwrap();
        assert!(rows.next().await.unwrap().is_none());
    }
}
