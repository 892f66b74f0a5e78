//! Rows kept only for a while, deleted by the housekeeping task every ten minutes.

use crate::app::AppState;
use crate::db::{credits, sessions, stripe_events, tasks, webhooks};
use crate::domain::now_secs;

/// Svix retries a delivery for about a day and a half; a duplicate after a week is not a retry.
pub const WEBHOOK_RETENTION_SECS: i64 = 7 * 86_400;
/// A revoked Clerk session must stay refused while any token for it could be replayed; Clerk's
/// tokens live a minute and its sessions at most a week by default.
pub const REVOCATION_RETENTION_SECS: i64 = 30 * 86_400;

/// Stripe resends an event for up to three days (30 by hand); processed ones are kept a month.
pub const STRIPE_EVENT_RETENTION_SECS: i64 = 30 * 86_400;

/// Grants closed per sweep; the rest wait ten minutes for the next.
const EXPIRY_BATCH: u32 = 500;

pub async fn run(state: &AppState) -> anyhow::Result<()> {
    let now = now_secs();
    let conn = state.db.conn()?;
    let expired = sessions::delete_expired(&conn, now, state.site.session_idle_secs).await?;
    let (deliveries, revocations) =
        webhooks::sweep(&conn, now - WEBHOOK_RETENTION_SECS, now - REVOCATION_RETENTION_SECS).await?;
    let deliveries = deliveries + stripe_events::sweep(&conn, now - STRIPE_EVENT_RETENTION_SECS).await?;
    let deliveries = deliveries + tasks::sweep_webhooks(&conn, now - WEBHOOK_RETENTION_SECS).await?;
    if expired + deliveries + revocations > 0 {
        tracing::info!(expired, deliveries, revocations, "removed rows past their retention");
    }
    // Expired grants are already unspendable; closing them keeps the cached balances true.
    let grants = credits::expire_due(&conn, now, EXPIRY_BATCH).await?;
    if grants > 0 {
        tracing::info!(grants, "closed expired credit grants");
    }
    let (held, destroyed) = crate::stripe_sync::access::sweep(state, now).await?;
    if held + destroyed > 0 {
        tracing::info!(held, destroyed, "agents of ended subscriptions held or destroyed");
    }
    Ok(())
}
