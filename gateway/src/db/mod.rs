//! libSQL access: a local file (WAL, busy timeout) or a remote Turso database.

pub mod api_tokens;
pub mod migrate;
pub mod sessions;
pub mod usage_events;
pub mod users;
pub mod webhooks;

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use libsql::{Builder, Connection, Database};

const BUSY_TIMEOUT: Duration = Duration::from_secs(3);

#[derive(Clone)]
pub struct Db {
    database: Arc<Database>,
    is_local: bool,
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
            if let Some(parent) = std::path::Path::new(location).parent().filter(|p| !p.as_os_str().is_empty()) {
                std::fs::create_dir_all(parent).with_context(|| format!("creating {}", parent.display()))?;
            }
            Builder::new_local(location).build().await.with_context(|| format!("opening database file {location}"))?
        };
        let db = Self { database: Arc::new(database), is_local: !is_remote };
        if db.is_local {
            // WAL lives in the file, so setting it once is enough; `query` because the pragma returns a row.
            let conn = db.conn()?;
            let mut rows = conn.query("PRAGMA journal_mode=WAL", ()).await.context("enabling WAL")?;
            while rows.next().await?.is_some() {}
        }
        Ok(db)
    }

    pub fn is_local(&self) -> bool {
        self.is_local
    }

    /// A fresh connection. Local connections get a busy timeout, since they run on the async worker.
    pub fn conn(&self) -> Result<Connection, libsql::Error> {
        let conn = self.database.connect()?;
        if self.is_local {
            conn.busy_timeout(BUSY_TIMEOUT)?;
        }
        Ok(conn)
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

pub fn is_unique_violation(err: &libsql::Error) -> bool {
    err.to_string().contains("UNIQUE constraint failed")
}
