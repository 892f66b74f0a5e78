//! The webhook worker: drains `stripe_events` in bounded batches, each event handled by
//! re-fetching its object (see the module above), failures retried with backoff and recorded in
//! `attempts`/`last_error`; and a periodic re-sync of every customer, for missed deliveries.

use std::time::Duration;

use tokio::time::Instant;

use super::{StripeBilling, handle, resync_customer};
use crate::app::AppState;
use crate::db::{billing_customers, stripe_events};
use crate::domain::now_secs;

/// Events taken per pass.
const BATCH: u32 = 50;
/// Checked this often even without a wake-up (a retry coming due, another instance's events).
const POLL: Duration = Duration::from_secs(2);
/// A failed event waits 2^attempts seconds, at most an hour.
const MAX_BACKOFF_SECS: i64 = 3600;
/// From this many failures on, each one is logged as an error (someone should look).
const ALERT_AFTER: i64 = 5;
/// What `last_error` keeps.
const ERROR_CHARS: usize = 500;
/// Customers per page of the re-sync.
const RESYNC_PAGE: u32 = 100;

pub fn backoff_secs(attempts: i64) -> i64 {
    1i64.checked_shl(u32::try_from(attempts.clamp(0, 30)).unwrap_or(30))
        .unwrap_or(MAX_BACKOFF_SECS)
        .min(MAX_BACKOFF_SECS)
}

pub async fn run(state: AppState) {
    let Some(stripe) = state.stripe.as_ref() else { return };
    let mut next_resync = stripe.resync_every.map(|every| Instant::now() + every);
    loop {
        let handled = match pass(&state, stripe).await {
            Ok(n) => n,
            Err(e) => {
                tracing::warn!(error = %e, "the Stripe worker could not read its inbox");
                0
            }
        };
        if let Err(e) = super::deleted_accounts::cancel_due(&state, stripe).await {
            tracing::warn!(error = %e, "cancelling deleted accounts' subscriptions failed");
        }
        if let Err(e) = super::refill::run_due(&state, stripe).await {
            tracing::warn!(error = %e, "auto-refills failed");
        }
        if handled as u32 == BATCH {
            continue;
        }
        if let (Some(at), Some(every)) = (next_resync, stripe.resync_every)
            && Instant::now() >= at
        {
            resync(&state, stripe).await;
            next_resync = Some(Instant::now() + every);
        }
        tokio::select! {
            _ = stripe.wake.notified() => {}
            _ = tokio::time::sleep(POLL) => {}
        }
    }
}

/// Handles the events due now, at most [`BATCH`]; returns how many were taken.
pub async fn pass(state: &AppState, stripe: &StripeBilling) -> Result<usize, libsql::Error> {
    let now = now_secs();
    let due = stripe_events::due(&*state.db.conn()?, now, BATCH).await?;
    for event in &due {
        let outcome = handle(state, stripe, &event.kind, event.object_id.as_deref()).await;
        let conn = state.db.conn()?;
        match outcome {
            Ok(()) => stripe_events::mark_processed(&conn, &event.id, now_secs()).await?,
            Err(error) => {
                let attempts = event.attempts + 1;
                let retry_at = now_secs() + backoff_secs(attempts);
                if attempts >= ALERT_AFTER {
                    tracing::error!(event_id = %event.id, kind = %event.kind, attempts, %error, "a Stripe event keeps failing");
                } else {
                    tracing::warn!(event_id = %event.id, kind = %event.kind, attempts, %error, "a Stripe event failed; retrying");
                }
                let error: String = error.chars().take(ERROR_CHARS).collect();
                stripe_events::mark_failed(&conn, &event.id, &error, retry_at).await?;
            }
        }
    }
    Ok(due.len())
}

/// Every bound customer, page by page; a failure is logged and the next customer goes on.
pub async fn resync(state: &AppState, stripe: &StripeBilling) {
    let mut after = String::new();
    let mut synced = 0usize;
    loop {
        let page = match state.db.conn() {
            Ok(conn) => billing_customers::page(&conn, &after, RESYNC_PAGE).await,
            Err(e) => Err(e),
        };
        let page = match page {
            Ok(page) => page,
            Err(e) => {
                tracing::warn!(error = %e, "the Stripe re-sync could not list customers");
                return;
            }
        };
        for customer in &page {
            match resync_customer(state, stripe, customer).await {
                Ok(()) => synced += 1,
                Err(error) => tracing::warn!(customer = %customer, %error, "re-syncing a Stripe customer failed"),
            }
        }
        match page.last() {
            Some(last) if page.len() as u32 == RESYNC_PAGE => after = last.clone(),
            _ => break,
        }
    }
    tracing::info!(customers = synced, "re-synced Stripe subscriptions");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_an_hour_and_never_overflows() {
        assert_eq!([1, 2, 3, 10].map(backoff_secs), [2, 4, 8, 1024]);
        assert_eq!(backoff_secs(12), MAX_BACKOFF_SECS);
        assert_eq!(backoff_secs(i64::MAX), MAX_BACKOFF_SECS);
        assert_eq!(backoff_secs(-5), 1);
    }
}
