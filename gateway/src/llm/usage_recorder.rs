//! Writes one `usage_events` row per forwarded model call from a task of its own, so the row is
//! written however the call ends — even when the agent hangs up and its response is dropped.

use std::time::Duration;

use billing::plans::ModelPrice;
use billing::usage::Usage;
use tokio::sync::oneshot;

use super::LlmApi;
use crate::db::Db;
use crate::db::credits;
use crate::db::usage_events::NewUsageEvent;
use crate::domain::{UserId, now_secs};

/// Waits before each write attempt; the idempotency key makes a retry after an unclear failure safe.
const WRITE_ATTEMPTS: [Duration; 4] =
    [Duration::ZERO, Duration::from_millis(200), Duration::from_secs(1), Duration::from_secs(5)];

pub struct UsageCall {
    pub user: UserId,
    pub api: LlmApi,
    pub model: String,
    /// What its tokens cost, decided before it went upstream.
    pub price: ModelPrice,
}

/// How a call ended, as far as metering goes.
#[derive(Debug)]
pub struct Tally {
    /// The provider's status; 0 when it never answered.
    pub upstream_status: u16,
    pub usage: Usage,
    /// The answer ended normally and carried the provider's final usage report.
    pub complete: bool,
}

impl Tally {
    /// The provider never answered: unreachable, timed out, or the agent left first.
    fn unanswered() -> Self {
        Self { upstream_status: 0, usage: Usage::default(), complete: false }
    }
}

/// Where a call's tally goes. Dropping it unsent records the call as unanswered.
pub struct UsageReport(oneshot::Sender<Tally>);

impl UsageReport {
    pub fn send(self, tally: Tally) {
        // The recorder only stops early if the runtime is shutting down; nothing to do then.
        let _ = self.0.send(tally);
    }
}

/// Starts the recorder for one call, before anything is sent upstream.
pub fn start(db: Db, call: UsageCall) -> UsageReport {
    let (report, tally) = oneshot::channel();
    let idempotency_key = uuid::Uuid::new_v4().to_string();
    tokio::spawn(async move {
        let tally = tally.await.unwrap_or_else(|_| Tally::unanswered());
        record(&db, &call, &idempotency_key, &tally).await;
    });
    UsageReport(report)
}

async fn record(db: &Db, call: &UsageCall, idempotency_key: &str, tally: &Tally) {
    let api = call.api.as_str();
    metrics::counter!("llm_tokens_total", "api" => api, "kind" => "input").increment(tally.usage.input_tokens);
    metrics::counter!("llm_tokens_total", "api" => api, "kind" => "output").increment(tally.usage.output_tokens);
    let event = NewUsageEvent {
        user_id: &call.user,
        idempotency_key,
        api,
        model: &call.model,
        input_tokens: tally.usage.input_tokens,
        output_tokens: tally.usage.output_tokens,
        upstream_status: tally.upstream_status,
        complete: tally.complete,
        created_at: now_secs(),
    };
    let cost = call.price.credits(tally.usage.input_tokens, tally.usage.output_tokens);
    for wait in WRITE_ATTEMPTS {
        tokio::time::sleep(wait).await;
        // Recorded and debited together, once per key: a retry after an unclear failure is safe.
        match credits::record_and_debit_in_turn(db, &event, cost).await {
            Ok(Some(debit)) if debit.shortfall > 0 => {
                tracing::info!(user_id = %call.user, shortfall = debit.shortfall, "a model call cost more than the credits left");
                return;
            }
            Ok(_) => return,
            Err(e) => tracing::warn!(error = %e, idempotency_key, "writing a usage event failed"),
        }
    }
    tracing::error!(
        user = %call.user,
        idempotency_key,
        ?tally,
        "usage event lost: the database refused every attempt"
    );
}
