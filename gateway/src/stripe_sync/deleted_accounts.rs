//! A deleted account's live subscription is cancelled with Stripe, so it is never charged again.
//! The deletion itself never waits for Stripe: the worker takes the subscriptions of deleted
//! accounts from the mirror (a row stays live until Stripe confirms), and retries a failure with
//! backoff; the same Idempotency-Key for every attempt makes repeats harmless.

use billing::stripe::CallError;

use super::{StripeBilling, store_subscription};
use crate::app::App;
use crate::db::subscriptions;
use crate::domain::now_secs;

/// Subscriptions cancelled per pass.
const BATCH: u32 = 20;

/// Returns how many subscriptions were cancelled.
pub async fn cancel_due(app: &App, stripe: &StripeBilling) -> Result<usize, libsql::Error> {
    let due = subscriptions::to_cancel_for_deleted_users(&*app.db.conn()?, now_secs(), BATCH).await?;
    let mut cancelled = 0;
    for (id, attempts) in due {
        let key = format!("roost-cancel-deleted-{id}");
        let outcome = stripe.client.cancel_subscription(&id, &key).await;
        let conn = app.db.conn()?;
        match outcome {
            Ok(subscription) => match store_subscription(app, stripe, &subscription).await {
                Ok(user) => {
                    tracing::info!(user_id = %user, subscription = %id, "cancelled the subscription of a deleted account");
                    cancelled += 1;
                }
                Err(error) => {
                    tracing::warn!(subscription = %id, %error, "storing a cancelled subscription failed");
                    subscriptions::cancel_failed(&conn, &id, retry_at(attempts)).await?;
                }
            },
            Err(CallError::Refused { status: 404, .. }) => subscriptions::mark_gone(&conn, &id, now_secs()).await?,
            Err(error) => {
                tracing::warn!(subscription = %id, attempts = attempts + 1, %error,
                               "cancelling a deleted account's subscription failed; retrying");
                subscriptions::cancel_failed(&conn, &id, retry_at(attempts)).await?;
            }
        }
    }
    Ok(cancelled)
}

fn retry_at(attempts: i64) -> i64 {
    now_secs() + super::worker::backoff_secs(attempts + 1)
}
