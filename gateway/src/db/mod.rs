//! libSQL access: a local file (WAL, busy timeout) or a remote Turso database.

pub mod admin_audit;
pub mod admin_views;
pub mod agent_holds;
pub mod api_tokens;
pub mod auto_refills;
pub mod billing_customers;
pub mod chat_messages;
pub mod chat_run_ends;
pub mod chat_sessions;
pub mod credentials;
pub mod credit_voids;
pub mod credits;
pub mod deletion;
pub mod fly_machines;
pub mod integrations;
pub mod invites;
pub mod leases;
pub mod llm_keys;
pub mod machine_events;
pub mod machines;
pub mod migrate;
pub mod password_resets;
pub mod sessions;
pub mod stripe_events;
pub mod subscriptions;
pub mod tasks;
pub mod usage_events;
pub mod users;
pub mod webhooks;

use std::ops::Deref;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use libsql::{Builder, Connection, Database};

const BUSY_TIMEOUT: Duration = Duration::from_secs(3);
/// Idle local connections kept for reuse. Opening one reads and parses the whole schema, which
/// cost more than the query itself on every request.
const MAX_IDLE: usize = 16;

#[derive(Clone)]
pub struct Db {
    database: Arc<Database>,
    is_local: bool,
    idle: Arc<Mutex<Vec<Connection>>>,
    /// Whose turn it is to write, for hot write transactions on a local file (see `write_turn`).
    writers: Arc<tokio::sync::Mutex<()>>,
}

/// A connection for one piece of work; a local one goes back to the pool when dropped, unless
/// it is inside a transaction.
pub struct Conn {
    conn: Option<Connection>,
    pool: Option<Arc<Mutex<Vec<Connection>>>>,
}

impl Deref for Conn {
    type Target = Connection;
    fn deref(&self) -> &Connection {
        self.conn.as_ref().expect("a connection until dropped")
    }
}

impl Drop for Conn {
    fn drop(&mut self) {
        if let (Some(conn), Some(pool)) = (self.conn.take(), &self.pool)
            && conn.is_autocommit()
        {
            let mut idle = pool.lock().unwrap_or_else(|e| e.into_inner());
            if idle.len() < MAX_IDLE {
                idle.push(conn);
            }
        }
    }
}

impl Db {
    /// `location` is a file path or a `libsql://`/`https://` URL (which needs `token`).
    pub async fn open(location: &str, token: Option<&str>) -> anyhow::Result<Self> {
        let is_remote = ["libsql://", "https://", "http://"].iter().any(|p| location.starts_with(p));
        let database = if is_remote {
            let token = token.context("a remote database needs --database-token (ROOST_DATABASE_TOKEN)")?;
            Builder::new_remote(location.to_string(), token.to_string())
                .build()
                .await
                .with_context(|| format!("opening remote database {location}"))?
        } else {
            let path = std::path::Path::new(location);
            if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
                std::fs::create_dir_all(parent).with_context(|| format!("creating {}", parent.display()))?;
            }
            // SQLite gives its -wal and -shm files the database file's mode.
            crate::private_files::file(path)?;
            Builder::new_local(location).build().await.with_context(|| format!("opening database file {location}"))?
        };
        let db =
            Self { database: Arc::new(database), is_local: !is_remote, idle: Arc::default(), writers: Arc::default() };
        if db.is_local {
            db.enable_wal().await.context("enabling WAL")?;
        }
        Ok(db)
    }

    /// WAL lives in the file, so setting it once is enough. Switching takes an exclusive lock,
    /// and SQLite answers "locked" at once (no busy wait) when another process opening the same
    /// new file holds it: try again for a while.
    async fn enable_wal(&self) -> Result<(), libsql::Error> {
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        loop {
            let attempt = async {
                let conn = self.conn()?;
                let mut rows = conn.query("PRAGMA journal_mode=WAL", ()).await?;
                while rows.next().await?.is_some() {}
                Ok::<_, libsql::Error>(())
            };
            match attempt.await {
                Err(e) if e.to_string().contains("database is locked") && std::time::Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                other => return other,
            }
        }
    }

    /// Waits for this process's turn to write to a local file, first come first served. SQLite
    /// has one writer anyway; left to its busy handler, many writers at once sleep and retry,
    /// and under a burst (32 model calls debited at once) one of them can wait out the busy
    /// timeout and fail with "database is locked". A remote database serializes writes itself.
    pub async fn write_turn(&self) -> Option<tokio::sync::MutexGuard<'_, ()>> {
        match self.is_local {
            true => Some(self.writers.lock().await),
            false => None,
        }
    }

    pub fn is_local(&self) -> bool {
        self.is_local
    }

    /// A connection: a pooled one for a local file (with a busy timeout, since it runs on the
    /// async worker), a fresh one for a remote database.
    pub fn conn(&self) -> Result<Conn, libsql::Error> {
        if !self.is_local {
            return Ok(Conn { conn: Some(self.database.connect()?), pool: None });
        }
        let reused = self.idle.lock().unwrap_or_else(|e| e.into_inner()).pop();
        let conn = match reused {
            Some(conn) => conn,
            None => {
                let conn = self.database.connect()?;
                conn.busy_timeout(BUSY_TIMEOUT)?;
                synchronous_normal(&conn);
                conn
            }
        };
        Ok(Conn { conn: Some(conn), pool: Some(self.idle.clone()) })
    }

    pub async fn ping(&self) -> Result<(), libsql::Error> {
        let conn = self.conn()?;
        let mut rows = conn.query("SELECT 1", ()).await?;
        while rows.next().await?.is_some() {}
        Ok(())
    }
}

/// Maps the first row of a query, then drains the rest so the connection is free for writes.
/// The mapping must happen first: a local `Row` reads from the statement, which draining moves.
pub async fn first_row<T>(
    mut rows: libsql::Rows,
    map: impl FnOnce(&libsql::Row) -> Result<T, libsql::Error>,
) -> Result<Option<T>, libsql::Error> {
    let first = match rows.next().await? {
        Some(row) => Some(map(&row)?),
        None => None,
    };
    while rows.next().await?.is_some() {}
    Ok(first)
}

/// The user ids in the first column of every row (ids that do not parse are skipped).
pub async fn user_ids(mut rows: libsql::Rows) -> Result<Vec<crate::domain::UserId>, libsql::Error> {
    let mut users = Vec::new();
    while let Some(row) = rows.next().await? {
        if let Ok(user) = crate::domain::UserId::parse(&row.get::<String>(0)?) {
            users.push(user);
        }
    }
    Ok(users)
}

pub fn is_unique_violation(err: &libsql::Error) -> bool {
    err.to_string().contains("UNIQUE constraint failed")
}

/// A fresh, migrated database file for unit tests (deleted with the directory).
#[cfg(test)]
pub async fn migrated_temp_db() -> (tempfile::TempDir, Db) {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(dir.path().join("t.db").to_str().unwrap(), None).await.unwrap();
    migrate::run(&db).await.unwrap();
    (dir, db)
}

/// In WAL mode, `synchronous=NORMAL` syncs at checkpoints rather than at every commit: a crash
/// of Roost loses nothing, and the database cannot be corrupted; only a power loss can undo the
/// last commits. Every commit waiting for the disk capped writes at a few hundred a second.
/// What such a loss could undo is re-derived: usage is re-read from nothing (a lost debit is a
/// call the user did not pay for), and Stripe grants come back with the next re-sync, once each.
/// The local statement completes on its first poll; it is a setting, so a miss only costs speed.
fn synchronous_normal(conn: &Connection) {
    use futures_util::FutureExt;
    match conn.execute("PRAGMA synchronous=NORMAL", ()).now_or_never() {
        Some(Ok(_)) => {}
        Some(Err(e)) => tracing::warn!(error = %e, "could not relax synchronous writes"),
        None => tracing::warn!("setting synchronous writes did not complete at once"),
    }
}
