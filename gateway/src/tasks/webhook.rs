//! Completion webhooks: `POST <webhook_url>` with the finished task as JSON, signed like
//! Stripe's: `Roost-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>`,
//! where the secret is the token's webhook secret (its text, as shown once). Anything but a 2xx
//! is retried with growing waits, a bounded number of times.

use std::time::Duration;

use futures_util::StreamExt;
use serde_json::json;

use super::ssrf;
use crate::app::AppState;
use crate::db::{api_tokens, tasks};
use crate::domain::now_secs;

/// Waits before each retry; after the last, the webhook is given up (about 2.5 hours in all).
pub const BACKOFF_SECS: [i64; 8] = [1, 5, 30, 120, 600, 1800, 3600, 3600];
const DELIVERY_TIMEOUT: Duration = Duration::from_secs(10);
const POLL: Duration = Duration::from_secs(1);
const BATCH: u32 = 32;
const AT_ONCE: usize = 4;
pub const SIGNATURE_HEADER: &str = "Roost-Signature";

/// What the webhook secret of token `token_id` is sealed under.
pub fn secret_context(token_id: &str) -> String {
    format!("task-webhook-secret:{token_id}")
}

/// `t=…,v1=…` for `body` sent at `t`.
pub fn signature(secret: &[u8], t: i64, body: &str) -> String {
    let mac = crate::crypto::hmac_sha256(secret, format!("{t}.{body}").as_bytes());
    format!("t={t},v1={}", hex::encode(mac))
}

pub async fn deliver_due(state: AppState) {
    loop {
        let due = match state.db.conn() {
            Ok(conn) => tasks::due_webhooks(&conn, now_secs(), BATCH).await.unwrap_or_else(|e| {
                tracing::warn!(error = %e, "reading due task webhooks failed");
                Vec::new()
            }),
            Err(_) => Vec::new(),
        };
        futures_util::stream::iter(due)
            .for_each_concurrent(AT_ONCE, |due| {
                let state = state.clone();
                async move { attempt(&state, due).await }
            })
            .await;
        let _ = tokio::time::timeout(POLL, state.tasks.webhooks_due.notified()).await;
    }
}

enum Tried {
    Delivered(u16),
    Failed(Option<u16>),
    /// Nothing could ever deliver it (the task or its secret is gone).
    Hopeless,
}

async fn attempt(state: &AppState, due: tasks::DueWebhook) {
    let tried = try_once(state, &due.task_id).await;
    let now = now_secs();
    let (status, delivered, retry_at) = match tried {
        Tried::Delivered(status) => (Some(status), true, None),
        Tried::Failed(status) => {
            let wait = usize::try_from(due.attempts).ok().and_then(|n| BACKOFF_SECS.get(n));
            (status, false, wait.map(|w| now + w))
        }
        Tried::Hopeless => (None, false, None),
    };
    if !delivered && retry_at.is_none() {
        tracing::warn!(task_id = %due.task_id, attempts = due.attempts + 1, "a task webhook was given up");
    }
    if let Ok(conn) = state.db.conn()
        && let Err(e) = tasks::webhook_attempted(&conn, &due.task_id, status, delivered, retry_at, now).await
    {
        tracing::warn!(task_id = %due.task_id, error = %e, "recording a webhook attempt failed");
    }
}

async fn try_once(state: &AppState, task_id: &str) -> Tried {
    let Ok(conn) = state.db.conn() else { return Tried::Failed(None) };
    let Ok(Some(task)) = tasks::find_any(&conn, task_id).await else { return Tried::Hopeless };
    let Some(url) = task.webhook_url.as_deref() else { return Tried::Hopeless };
    let Ok(Some((sealed, version))) = api_tokens::webhook_secret(&conn, &task.token_id).await else {
        return Tried::Hopeless;
    };
    let Some(secret) = crate::crypto::open(state.secret.expose(), version, &secret_context(&task.token_id), &sealed)
    else {
        tracing::error!(task_id, "a token's webhook secret does not open with this server secret");
        return Tried::Hopeless;
    };
    let credits = tasks::credits_used(&conn, &task, now_secs(), super::view::CREDIT_GRACE_SECS).await.unwrap_or(0);
    drop(conn);
    let body = json!({
        "type": format!("task.{}", task.status.as_str()),
        "task": super::view::task_json(&task, credits),
    })
    .to_string();
    // Checked again now: the name may resolve elsewhere than when the task was submitted.
    let target = match ssrf::check(url, state.tasks.settings.allow_private_webhooks, &state.tasks.resolver).await {
        Ok(target) => target,
        Err(refused) => {
            tracing::info!(task_id, reason = %refused.0, "a task webhook was refused by the address check");
            return Tried::Failed(None);
        }
    };
    let client = match reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .timeout(DELIVERY_TIMEOUT)
        .user_agent(concat!("roost-webhooks/", env!("CARGO_PKG_VERSION")))
        .resolve_to_addrs(&target.host, &target.addrs)
        .build()
    {
        Ok(client) => client,
        Err(e) => {
            tracing::warn!(error = %e, "building the webhook client failed");
            return Tried::Failed(None);
        }
    };
    let t = now_secs();
    let sent = client
        .post(target.url)
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .header(SIGNATURE_HEADER, signature(&secret, t, &body))
        .header("Roost-Task-Id", task_id)
        .body(body)
        .send()
        .await;
    match sent {
        Ok(res) if res.status().is_success() => Tried::Delivered(res.status().as_u16()),
        Ok(res) => Tried::Failed(Some(res.status().as_u16())),
        Err(_) => Tried::Failed(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_signature_is_an_hmac_of_timestamp_dot_body() {
        let sig = signature(b"whsec_test", 1_700_000_000, "{\"a\":1}");
        let expected = hex::encode(crate::crypto::hmac_sha256(b"whsec_test", b"1700000000.{\"a\":1}"));
        assert_eq!(sig, format!("t=1700000000,v1={expected}"));
    }
}
