//! `tasks` and `task_webhooks` (migration 0011): task API runs and their completion webhooks.

use libsql::Connection;

use super::first_row;
use crate::domain::UserId;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Queued,
    Running,
    Completed,
    Failed,
    Cancelled,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Queued => "queued",
            Self::Running => "running",
            Self::Completed => "completed",
            Self::Failed => "failed",
            Self::Cancelled => "cancelled",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        Some(match raw {
            "queued" => Self::Queued,
            "running" => Self::Running,
            "completed" => Self::Completed,
            "failed" => Self::Failed,
            "cancelled" => Self::Cancelled,
            _ => return None,
        })
    }

    pub fn is_open(self) -> bool {
        matches!(self, Self::Queued | Self::Running)
    }
}

#[derive(Debug, Clone)]
pub struct Task {
    pub id: String,
    pub user_id: UserId,
    pub token_id: String,
    pub status: Status,
    pub prompt: String,
    pub session_key: String,
    pub webhook_url: Option<String>,
    pub result_text: Option<String>,
    /// JSON array, as the run recorded it.
    pub tool_calls: String,
    pub error: Option<String>,
    pub created_at: i64,
    pub started_at: Option<i64>,
    pub finished_at: Option<i64>,
}

const COLUMNS: &str = "id, user_id, token_id, status, prompt, session_key, webhook_url, result_text, tool_calls, \
                       error, created_at, started_at, finished_at";

fn from_row(row: &libsql::Row) -> Result<Task, libsql::Error> {
    let user: String = row.get(1)?;
    let status: String = row.get(3)?;
    Ok(Task {
        id: row.get(0)?,
        user_id: UserId::parse(&user).map_err(|_| libsql::Error::InvalidColumnType)?,
        token_id: row.get(2)?,
        status: Status::parse(&status).ok_or(libsql::Error::InvalidColumnType)?,
        prompt: row.get(4)?,
        session_key: row.get(5)?,
        webhook_url: row.get(6)?,
        result_text: row.get(7)?,
        tool_calls: row.get(8)?,
        error: row.get(9)?,
        created_at: row.get(10)?,
        started_at: row.get(11)?,
        finished_at: row.get(12)?,
    })
}

async fn collect(mut rows: libsql::Rows) -> Result<Vec<Task>, libsql::Error> {
    let mut tasks = Vec::new();
    while let Some(row) = rows.next().await? {
        tasks.push(from_row(&row)?);
    }
    Ok(tasks)
}

pub struct NewTask<'a> {
    pub id: &'a str,
    pub user_id: &'a UserId,
    pub token_id: &'a str,
    pub prompt: &'a str,
    pub session_key: &'a str,
    pub webhook_url: Option<&'a str>,
    pub created_at: i64,
}

/// Queues the task unless its token has `max_open` tasks queued or running already, checked in
/// the same statement; returns whether it was queued.
pub async fn insert(conn: &Connection, t: NewTask<'_>, max_open: u32) -> Result<bool, libsql::Error> {
    let inserted = conn
        .execute(
            "INSERT INTO tasks (id, user_id, token_id, status, prompt, session_key, webhook_url, created_at)
             SELECT ?1, ?2, ?3, 'queued', ?4, ?5, ?6, ?7
             WHERE (SELECT count(*) FROM tasks WHERE token_id = ?3 AND status IN ('queued', 'running')) < ?8",
            (t.id, t.user_id.as_str(), t.token_id, t.prompt, t.session_key, t.webhook_url, t.created_at, max_open),
        )
        .await?;
    Ok(inserted > 0)
}

/// One of the user's own tasks; another user's is "not found".
pub async fn find(conn: &Connection, user: &UserId, id: &str) -> Result<Option<Task>, libsql::Error> {
    let sql = format!("SELECT {COLUMNS} FROM tasks WHERE id = ?1 AND user_id = ?2");
    first_row(conn.query(&sql, (id, user.as_str())).await?, from_row).await
}

pub async fn find_any(conn: &Connection, id: &str) -> Result<Option<Task>, libsql::Error> {
    let sql = format!("SELECT {COLUMNS} FROM tasks WHERE id = ?1");
    first_row(conn.query(&sql, [id]).await?, from_row).await
}

/// The user's tasks, newest first, after `before` (`(created_at, id)` of the last one seen).
pub async fn list(
    conn: &Connection,
    user: &UserId,
    status: Option<Status>,
    before: Option<(i64, &str)>,
    limit: u32,
) -> Result<Vec<Task>, libsql::Error> {
    let (at, id) = before.unwrap_or((i64::MAX, ""));
    let sql = format!(
        "SELECT {COLUMNS} FROM tasks WHERE user_id = ?1 AND (?2 IS NULL OR status = ?2)
           AND (created_at < ?3 OR (created_at = ?3 AND id < ?4) OR ?5 = 0)
         ORDER BY created_at DESC, id DESC LIMIT ?6"
    );
    let status = status.map(Status::as_str);
    collect(conn.query(&sql, (user.as_str(), status, at, id, i64::from(before.is_some()), limit)).await?).await
}

/// Queued tasks no live runner has (never picked up, or their runner stopped beating).
pub async fn claimable(conn: &Connection, stale_before: i64, limit: u32) -> Result<Vec<String>, libsql::Error> {
    let mut rows = conn
        .query(
            "SELECT id FROM tasks WHERE status = 'queued' AND (runner IS NULL OR heartbeat_at < ?1)
             ORDER BY created_at LIMIT ?2",
            (stale_before, limit),
        )
        .await?;
    let mut ids = Vec::new();
    while let Some(row) = rows.next().await? {
        ids.push(row.get(0)?);
    }
    Ok(ids)
}

/// Takes a queued task for `runner`, unless another live runner has it.
pub async fn claim(
    conn: &Connection,
    id: &str,
    runner: &str,
    now: i64,
    stale_before: i64,
) -> Result<bool, libsql::Error> {
    let changed = conn
        .execute(
            "UPDATE tasks SET runner = ?2, heartbeat_at = ?3
             WHERE id = ?1 AND status = 'queued' AND (runner IS NULL OR runner = ?2 OR heartbeat_at < ?4)",
            (id, runner, now, stale_before),
        )
        .await?;
    Ok(changed > 0)
}

/// queued → running, just before the prompt is sent. False if it was cancelled meanwhile.
pub async fn start(conn: &Connection, id: &str, runner: &str, now: i64) -> Result<bool, libsql::Error> {
    let changed = conn
        .execute(
            "UPDATE tasks SET status = 'running', started_at = ?3, heartbeat_at = ?3
             WHERE id = ?1 AND runner = ?2 AND status = 'queued' AND cancel_requested = 0",
            (id, runner, now),
        )
        .await?;
    Ok(changed > 0)
}

/// The runner is alive; saves the tool calls so far. Returns whether a cancel was asked for.
pub async fn heartbeat(
    conn: &Connection,
    id: &str,
    runner: &str,
    now: i64,
    tool_calls: &str,
) -> Result<bool, libsql::Error> {
    conn.execute(
        "UPDATE tasks SET heartbeat_at = ?3, tool_calls = ?4 WHERE id = ?1 AND runner = ?2 AND status IN ('queued', 'running')",
        (id, runner, now, tool_calls),
    )
    .await?;
    let cancel =
        first_row(conn.query("SELECT cancel_requested FROM tasks WHERE id = ?1", [id]).await?, |row| row.get::<i64>(0))
            .await?;
    Ok(cancel == Some(1))
}

pub struct Outcome<'a> {
    pub status: Status,
    pub text: Option<&'a str>,
    pub tool_calls: &'a str,
    pub error: Option<&'a str>,
}

/// Closes an open task and, if it has a webhook URL, queues its webhook. False if it was closed
/// already (the first outcome wins).
pub async fn finish(conn: &Connection, id: &str, outcome: Outcome<'_>, now: i64) -> Result<bool, libsql::Error> {
    let tx = conn.transaction().await?;
    let changed = tx
        .execute(
            "UPDATE tasks SET status = ?2, result_text = ?3, tool_calls = ?4, error = ?5, finished_at = ?6
             WHERE id = ?1 AND status IN ('queued', 'running')",
            (id, outcome.status.as_str(), outcome.text, outcome.tool_calls, outcome.error, now),
        )
        .await?;
    if changed > 0 {
        tx.execute(
            "INSERT INTO task_webhooks (task_id, next_attempt_at)
             SELECT id, ?2 FROM tasks WHERE id = ?1 AND webhook_url IS NOT NULL
             ON CONFLICT (task_id) DO NOTHING",
            (id, now),
        )
        .await?;
    }
    tx.commit().await?;
    Ok(changed > 0)
}

/// Asks for the user's task to stop: a queued one is cancelled at once (true), a running one is
/// flagged for its runner (false). `None`: no such open task of theirs.
pub async fn request_cancel(
    conn: &Connection,
    user: &UserId,
    id: &str,
    now: i64,
) -> Result<Option<bool>, libsql::Error> {
    let changed = conn
        .execute(
            "UPDATE tasks SET cancel_requested = 1 WHERE id = ?1 AND user_id = ?2 AND status IN ('queued', 'running')",
            (id, user.as_str()),
        )
        .await?;
    if changed == 0 {
        return Ok(None);
    }
    let queued = conn
        .execute(
            "UPDATE tasks SET status = 'cancelled', finished_at = ?2, error = 'Cancelled before it started.'
             WHERE id = ?1 AND status = 'queued'",
            (id, now),
        )
        .await?;
    if queued > 0 {
        conn.execute(
            "INSERT INTO task_webhooks (task_id, next_attempt_at)
             SELECT id, ?2 FROM tasks WHERE id = ?1 AND webhook_url IS NOT NULL ON CONFLICT (task_id) DO NOTHING",
            (id, now),
        )
        .await?;
    }
    Ok(Some(queued > 0))
}

/// Running tasks whose runner has not beaten since `stale_before` (it died), or of `runner`
/// (stopping): failed, with `why`, and their webhooks queued. Returns how many.
pub async fn fail_orphans(
    conn: &Connection,
    stale_before: i64,
    runner: Option<&str>,
    why: &str,
    now: i64,
) -> Result<u64, libsql::Error> {
    const ORPHAN: &str = "status = 'running' AND (heartbeat_at < ?1 OR runner = ?2)";
    let tx = conn.transaction().await?;
    tx.execute(
        &format!(
            "INSERT INTO task_webhooks (task_id, next_attempt_at)
             SELECT id, ?3 FROM tasks WHERE {ORPHAN} AND webhook_url IS NOT NULL ON CONFLICT (task_id) DO NOTHING"
        ),
        (stale_before, runner, now),
    )
    .await?;
    let failed = tx
        .execute(
            &format!("UPDATE tasks SET status = 'failed', error = ?3, finished_at = ?4 WHERE {ORPHAN}"),
            (stale_before, runner, why, now),
        )
        .await?;
    tx.commit().await?;
    Ok(failed)
}

/// Lets queued tasks of a stopping runner be picked up at once by the next one.
pub async fn release_queued(conn: &Connection, runner: &str) -> Result<u64, libsql::Error> {
    conn.execute("UPDATE tasks SET runner = NULL WHERE runner = ?1 AND status = 'queued'", [runner]).await
}

/// Credits of the user's model calls recorded while the task ran, `grace_secs` after its end
/// included (a call's usage is written when its stream ends, just after the reply).
pub async fn credits_used(conn: &Connection, task: &Task, now: i64, grace_secs: i64) -> Result<i64, libsql::Error> {
    let Some(started) = task.started_at else { return Ok(0) };
    let until = task.finished_at.map_or(now, |f| f + grace_secs);
    let sum = first_row(
        conn.query(
            "SELECT coalesce(sum(credits), 0) FROM usage_events WHERE user_id = ?1 AND created_at BETWEEN ?2 AND ?3",
            (task.user_id.as_str(), started, until),
        )
        .await?,
        |row| row.get::<i64>(0),
    )
    .await?;
    Ok(sum.unwrap_or(0))
}

pub struct DueWebhook {
    pub task_id: String,
    pub attempts: i64,
}

pub async fn due_webhooks(conn: &Connection, now: i64, limit: u32) -> Result<Vec<DueWebhook>, libsql::Error> {
    let mut rows = conn
        .query(
            "SELECT task_id, attempts FROM task_webhooks
             WHERE delivered_at IS NULL AND gave_up_at IS NULL AND next_attempt_at <= ?1
             ORDER BY next_attempt_at LIMIT ?2",
            (now, limit),
        )
        .await?;
    let mut due = Vec::new();
    while let Some(row) = rows.next().await? {
        due.push(DueWebhook { task_id: row.get(0)?, attempts: row.get(1)? });
    }
    Ok(due)
}

/// Records one delivery attempt: delivered, retried at `retry_at`, or given up (`retry_at` None).
pub async fn webhook_attempted(
    conn: &Connection,
    task_id: &str,
    status: Option<u16>,
    delivered: bool,
    retry_at: Option<i64>,
    now: i64,
) -> Result<(), libsql::Error> {
    let status = status.map(i64::from);
    if delivered {
        conn.execute(
            "UPDATE task_webhooks SET attempts = attempts + 1, last_status = ?2, delivered_at = ?3 WHERE task_id = ?1",
            (task_id, status, now),
        )
        .await?;
    } else if let Some(at) = retry_at {
        conn.execute(
            "UPDATE task_webhooks SET attempts = attempts + 1, last_status = ?2, next_attempt_at = ?3 WHERE task_id = ?1",
            (task_id, status, at),
        )
        .await?;
    } else {
        conn.execute(
            "UPDATE task_webhooks SET attempts = attempts + 1, last_status = ?2, gave_up_at = ?3 WHERE task_id = ?1",
            (task_id, status, now),
        )
        .await?;
    }
    Ok(())
}

/// Delivered or given-up webhook rows older than `before` go.
pub async fn sweep_webhooks(conn: &Connection, before: i64) -> Result<u64, libsql::Error> {
    conn.execute("DELETE FROM task_webhooks WHERE coalesce(delivered_at, gave_up_at) < ?1", [before]).await
}
