//! Numbered `.sql` files from `migrations/`, embedded, each applied once in its own transaction.

use std::time::{Duration, Instant};

use anyhow::Context;
use libsql::{Connection, TransactionBehavior};

use super::Db;
use crate::domain::now_secs;

pub const MIGRATIONS: &[(&str, &str)] = &[
    ("0001_accounts", include_str!("../../../migrations/0001_accounts.sql")),
    ("0002_agents", include_str!("../../../migrations/0002_agents.sql")),
    ("0003_lifecycle", include_str!("../../../migrations/0003_lifecycle.sql")),
    ("0004_credits", include_str!("../../../migrations/0004_credits.sql")),
    ("0005_stripe", include_str!("../../../migrations/0005_stripe.sql")),
    ("0006_fly", include_str!("../../../migrations/0006_fly.sql")),
    ("0007_billing_more", include_str!("../../../migrations/0007_billing_more.sql")),
    ("0008_integrations", include_str!("../../../migrations/0008_integrations.sql")),
    ("0009_fly_reconcile", include_str!("../../../migrations/0009_fly_reconcile.sql")),
    ("0010_sessions_meta", include_str!("../../../migrations/0010_sessions_meta.sql")),
    ("0011_tasks", include_str!("../../../migrations/0011_tasks.sql")),
    ("0012_admin", include_str!("../../../migrations/0012_admin.sql")),
    ("0013_llm_keys", include_str!("../../../migrations/0013_llm_keys.sql")),
    ("0015_chat_message_tools", include_str!("../../../migrations/0015_chat_message_tools.sql")),
    ("0016_chat_run_ends", include_str!("../../../migrations/0016_chat_run_ends.sql")),
];

/// How long a start waits for another process (Fly's `release_command`, a second instance) that
/// is migrating the same database.
const LOCK_WAIT: Duration = Duration::from_secs(120);

/// Applies pending migrations in order and returns the names of those it applied.
pub async fn run(db: &Db) -> anyhow::Result<Vec<&'static str>> {
    apply(db, MIGRATIONS).await
}

/// Each migration is checked and applied in one transaction, so two processes migrating at once
/// apply each exactly once: the second waits for the first's lock, then sees it recorded.
async fn apply(db: &Db, migrations: &[(&'static str, &str)]) -> anyhow::Result<Vec<&'static str>> {
    let conn = db.conn()?;
    if !db.is_local() {
        conn.execute(SCHEMA_MIGRATIONS, ()).await?;
    }
    let mut applied = Vec::new();
    for (version, sql) in migrations {
        let did = if db.is_local() {
            apply_local(&conn, version, sql).await?
        } else {
            apply_remote(&conn, version, sql).await?
        };
        if did {
            tracing::info!(version, "applied migration");
            applied.push(*version);
        }
    }
    Ok(applied)
}

const SCHEMA_MIGRATIONS: &str =
    "CREATE TABLE IF NOT EXISTS schema_migrations (version TEXT PRIMARY KEY, applied_at INTEGER NOT NULL)";

fn record(version: &str) -> String {
    format!("INSERT INTO schema_migrations (version, applied_at) VALUES ('{version}', {});", now_secs())
}

async fn apply_local(conn: &Connection, version: &str, sql: &str) -> anyhow::Result<bool> {
    let deadline = Instant::now() + LOCK_WAIT;
    let tx = loop {
        match conn.transaction_with_behavior(TransactionBehavior::Immediate).await {
            Ok(tx) => break tx,
            Err(e) if is_busy(&e) && Instant::now() < deadline => tokio::time::sleep(Duration::from_millis(100)).await,
            Err(e) => return Err(e).context("waiting for the database to migrate"),
        }
    };
    // Under the lock too: another process may be creating it right now.
    tx.execute(SCHEMA_MIGRATIONS, ()).await.context("creating schema_migrations")?;
    let mut rows = tx
        .query("SELECT 1 FROM schema_migrations WHERE version = ?1", [version])
        .await
        .context("reading schema_migrations")?;
    if rows.next().await?.is_some() {
        return Ok(false);
    }
    drop(rows);
    tx.execute_batch(sql).await.with_context(|| format!("migration {version} failed"))?;
    tx.execute_batch(&record(version)).await.context("recording the migration")?;
    tx.commit().await.context("committing the migration")?;
    Ok(true)
}

/// A remote transaction is a round trip per statement, so a migration is one batch. Its first
/// statement records it: if another process got there first, that insert fails and the batch,
/// migration included, is rolled back.
async fn apply_remote(conn: &Connection, version: &str, sql: &str) -> anyhow::Result<bool> {
    let mut rows = conn.query("SELECT 1 FROM schema_migrations WHERE version = ?1", [version]).await?;
    if rows.next().await?.is_some() {
        return Ok(false);
    }
    drop(rows);
    match conn.execute_transactional_batch(&format!("{}\n{sql}", record(version))).await {
        Ok(_) => Ok(true),
        Err(e) if super::is_unique_violation(&e) => Ok(false),
        Err(e) => Err(e).with_context(|| format!("migration {version} failed")),
    }
}

fn is_busy(e: &libsql::Error) -> bool {
    let text = e.to_string();
    text.contains("database is locked") || text.contains("SQLITE_BUSY")
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
        let db = Db::open(dir.path().join("t.db").to_str().unwrap(), None).await.unwrap();
        assert_eq!(run(&db).await.unwrap().len(), MIGRATIONS.len());
        assert!(run(&db).await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn a_failing_migration_leaves_nothing_behind_and_stops_the_rest() {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(dir.path().join("t.db").to_str().unwrap(), None).await.unwrap();
        let migrations = [
            ("0001_fine", "CREATE TABLE fine (x);"),
            ("0002_broken", "CREATE TABLE half (x); THIS IS NOT SQL;"),
            ("0003_later", "CREATE TABLE later (x);"),
        ];
        let error = apply(&db, &migrations).await.unwrap_err();
        assert!(format!("{error:#}").contains("0002_broken"), "{error:#}");
        let conn = db.conn().unwrap();
        let names = |sql: &'static str| {
            let conn = &conn;
            async move {
                let mut rows = conn.query(sql, ()).await.unwrap();
                let mut out = Vec::new();
                while let Some(row) = rows.next().await.unwrap() {
                    out.push(row.get::<String>(0).unwrap());
                }
                out
            }
        };
        let tables =
            names("SELECT name FROM sqlite_master WHERE type = 'table' AND name IN ('fine', 'half', 'later')").await;
        assert_eq!(tables, ["fine"]);
        assert_eq!(names("SELECT version FROM schema_migrations").await, ["0001_fine"]);
    }
}
