//! The agent follows the subscription (research: stripe-billing §6.4). When a user who paid
//! loses access (cancelled, unpaid, paused, or `past_due` past its grace period) their agent is
//! stopped and held: it may not start, and its data is kept for the retention period
//! (`--billing-retention-days`), after which the lifecycle destroys it. Paid access again
//! (a resubscription, a paid invoice) releases the hold. A user who never subscribed is on the
//! free plan and is never held.

use std::time::Duration;

use billing::access::has_access;

use crate::app::App;
use crate::db::{agent_holds, subscriptions, users};
use crate::domain::UserId;

/// What the chat shows while the agent is stopped for this reason.
pub const STOPPED_REASON: &str = "stopped because your subscription ended";

const DESTROYING: &str = "deleting the agent and its data: the subscription ended and its retention is over";
const DESTROYED: &str = "deleted after the subscription ended";

/// Held agents destroyed per sweep; the rest wait for the next.
const DESTROY_BATCH: u32 = 16;
/// Users re-checked per sweep for a grace period that ran out.
const RECHECK_BATCH: u32 = 500;

/// The default `--billing-retention-days`.
pub const DEFAULT_RETENTION: Duration = Duration::from_secs(30 * 86_400);

fn retention_secs(app: &App) -> i64 {
    let retention = app.stripe.as_ref().map_or(DEFAULT_RETENTION, |s| s.retention);
    i64::try_from(retention.as_secs()).unwrap_or(i64::MAX)
}

/// Brings the user's agent in line with their subscriptions now: holds and stops it when paid
/// access has ended, releases it when access is back. Idempotent.
pub async fn apply(app: &App, user: &UserId, now: i64) -> Result<(), libsql::Error> {
    let conn = app.db.conn()?;
    if users::find_by_id(&conn, user).await?.is_none() {
        // A deleted account's agent is destroyed by the deletion, not held.
        return Ok(());
    }
    let rows = subscriptions::of_user(&conn, user).await?;
    if rows.is_empty() || rows.iter().any(|r| has_access(&r.status, r.past_due_since, now)) {
        if agent_holds::release(&conn, user).await? {
            tracing::info!(user_id = %user, "paid access is back: the agent may start again");
        }
        return Ok(());
    }
    let destroy_after = now.saturating_add(retention_secs(app));
    if agent_holds::hold(&conn, user, now, destroy_after).await? {
        tracing::info!(user_id = %user, destroy_after, "paid access ended: stopping the agent and keeping its data");
        drop(conn);
        // Each open tab then shows the stop, rather than reconnecting to a lost agent.
        app.relays.agent_stopped(user);
        if let Err(e) = app.machines.stop_because(user, STOPPED_REASON).await {
            tracing::warn!(user_id = %user, error = %e, "stopping the agent of an ended subscription failed");
        }
    }
    Ok(())
}

/// Part of the housekeeping sweep: holds agents whose grace period ran out without an event, and
/// destroys held agents whose retention is over.
pub async fn sweep(app: &App, now: i64) -> Result<(usize, usize), libsql::Error> {
    if app.stripe.is_none() {
        return Ok((0, 0));
    }
    let conn = app.db.conn()?;
    let candidates = agent_holds::unheld_without_good_standing(&conn, RECHECK_BATCH).await?;
    let due = agent_holds::due_for_destruction(&conn, now, DESTROY_BATCH).await?;
    drop(conn);
    let mut held = 0;
    for user in &candidates {
        apply(app, user, now).await?;
        held += usize::from(agent_holds::find(&*app.db.conn()?, user).await?.is_some());
    }
    let mut destroyed = 0;
    for user in due {
        // Errors are logged with an id by `destroy_because`; the hold stays due for the next sweep.
        if app.machines.destroy_because(&user, DESTROYING, DESTROYED).await.is_ok() {
            agent_holds::mark_destroyed(&*app.db.conn()?, &user, now).await?;
            tracing::info!(user_id = %user, "destroyed the agent of an ended subscription after its retention");
            destroyed += 1;
        }
    }
    Ok((held, destroyed))
}
