//! The task API's engine: tasks are queued in the database, picked up here, run as one
//! `chat.send` on the user's own agent (woken if needed), and closed with their outcome; a
//! completion webhook then goes out, signed with the token's secret.
//!
//! Restarts: a queued task has sent nothing to the agent yet, so the next Roost (or another
//! instance) simply runs it. A running task is failed with a sentence: its run lived in an agent
//! that stops with Roost (`local`), and sending the prompt again could repeat what its tools
//! already did (a message sent, a file written). The user decides whether to submit it again.

mod run;
pub mod ssrf;
pub mod view;
pub mod webhook;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{Notify, Semaphore};

use crate::app::AppState;
use crate::auth::rate_limit::KeyedLimiter;
use crate::db::tasks;
use crate::domain::now_secs;
use crate::settings::TaskSettings;

/// A runner beats this often while it has a task; one silent for [`STALE_SECS`] is dead.
const HEARTBEAT: Duration = Duration::from_secs(10);
const STALE_SECS: i64 = 45;
/// Tasks run at once by one Roost process, all users together; the rest wait queued.
const MAX_RUNNING: usize = 256;
const PICKUP_INTERVAL: Duration = Duration::from_secs(2);

pub const RESTARTED: &str = "Roost restarted while this task was running, so its run was interrupted. \
                             Nothing was sent again: submit the task again if you still want it.";
pub const RUNNER_LOST: &str = "The Roost server running this task stopped answering, so its run was \
                               interrupted. Nothing was sent again: submit the task again if you still want it.";

pub struct Tasks {
    pub settings: TaskSettings,
    /// This process's id in `tasks.runner`.
    runner: String,
    pub limiter: KeyedLimiter<String>,
    /// How webhook hosts are resolved (tests use a fixed table).
    pub resolver: ssrf::Resolver,
    running: Arc<Semaphore>,
    /// Tasks running here: how to cancel each, and its task handle (aborted at shutdown).
    live: Mutex<HashMap<String, Live>>,
    queued: Notify,
    pub(crate) webhooks_due: Notify,
}

struct Live {
    cancel: Arc<Notify>,
    abort: Option<tokio::task::AbortHandle>,
}

impl Tasks {
    pub fn new(settings: TaskSettings) -> Self {
        Self {
            limiter: KeyedLimiter::per_minute(settings.rate_per_token),
            settings,
            runner: uuid::Uuid::new_v4().to_string(),
            resolver: ssrf::Resolver::System,
            running: Arc::new(Semaphore::new(MAX_RUNNING)),
            live: Mutex::default(),
            queued: Notify::new(),
            webhooks_due: Notify::new(),
        }
    }

    /// A task was queued: pick it up now rather than at the next poll.
    pub fn wake(&self) {
        self.queued.notify_one();
    }

    /// Asks the task's run to abort if it runs here; otherwise its runner sees the flag at its
    /// next heartbeat.
    pub fn cancel_here(&self, id: &str) {
        if let Some(live) = self.live.lock().expect("tasks lock").get(id) {
            live.cancel.notify_one();
        }
    }

    fn forget(&self, id: &str) {
        self.live.lock().expect("tasks lock").remove(id);
    }

    /// At shutdown: tasks running here are failed (their agents stop with Roost), queued ones
    /// are left for the next start.
    pub async fn shutdown(&self, state: &AppState) {
        let handles: Vec<_> = self.live.lock().expect("tasks lock").drain().filter_map(|(_, l)| l.abort).collect();
        for handle in handles {
            handle.abort();
        }
        let Ok(conn) = state.db.conn() else { return };
        match tasks::fail_orphans(&conn, i64::MIN, Some(&self.runner), RESTARTED, now_secs()).await {
            Ok(n) if n > 0 => tracing::info!(tasks = n, "tasks running at shutdown were failed"),
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "closing the running tasks at shutdown failed"),
        }
        if let Err(e) = tasks::release_queued(&conn, &self.runner).await {
            tracing::warn!(error = %e, "releasing queued tasks at shutdown failed");
        }
    }
}

/// Picks up queued tasks (at once when one is queued here, otherwise every two seconds) and
/// closes those whose runner died.
pub async fn work(state: AppState) {
    loop {
        if let Err(e) = pick_up(&state).await {
            tracing::warn!(error = %e, "picking up tasks failed");
        }
        let _ = tokio::time::timeout(PICKUP_INTERVAL, state.tasks.queued.notified()).await;
    }
}

async fn pick_up(state: &AppState) -> anyhow::Result<()> {
    let me = &state.tasks;
    let now = now_secs();
    let conn = state.db.conn()?;
    let orphans = tasks::fail_orphans(&conn, now - STALE_SECS, None, RUNNER_LOST, now).await?;
    if orphans > 0 {
        tracing::warn!(tasks = orphans, "tasks whose runner stopped were failed");
        me.webhooks_due.notify_one();
    }
    let free = me.running.available_permits();
    if free == 0 {
        return Ok(());
    }
    for id in tasks::claimable(&conn, now - STALE_SECS, free.min(64) as u32).await? {
        let Ok(permit) = me.running.clone().try_acquire_owned() else { break };
        if !tasks::claim(&conn, &id, &me.runner, now, now - STALE_SECS).await? {
            continue;
        }
        let Some(task) = tasks::find_any(&conn, &id).await? else { continue };
        let cancel = Arc::new(Notify::new());
        me.live.lock().expect("tasks lock").insert(id.clone(), Live { cancel: cancel.clone(), abort: None });
        let (run_state, run_id) = (state.clone(), id.clone());
        let handle = tokio::spawn(async move {
            let _permit = permit;
            run::run(&run_state, task, cancel).await;
            run_state.tasks.forget(&run_id);
            run_state.tasks.webhooks_due.notify_one();
        });
        if let Some(live) = me.live.lock().expect("tasks lock").get_mut(&id) {
            live.abort = Some(handle.abort_handle());
        }
    }
    Ok(())
}
