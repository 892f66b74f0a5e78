//! `POST /webhooks/clerk`: Svix-signed events, handled once per `svix-id`.
//! `POST /webhooks/stripe`: Stripe-signed events, stored once per `event.id` for the worker.

use axum::http::HeaderMap;
use bytes::Bytes;
use libsql::TransactionBehavior;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::app::AppState;
use crate::auth::Revoked;
use crate::auth::svix;
use crate::db::{deletion, stripe_events, users, webhooks};
use crate::domain::now_secs;
use crate::error::{AppError, AppResult};

#[derive(Deserialize)]
struct ClerkEvent {
    #[serde(rename = "type")]
    kind: String,
    data: ClerkObject,
}

#[derive(Deserialize)]
struct ClerkObject {
    id: String,
}

pub async fn clerk(state: AppState, headers: HeaderMap, body: Bytes) -> AppResult<axum::Json<Value>> {
    let key = state.clerk_webhook_key.as_ref().ok_or_else(|| {
        AppError::not_found("This server does not take Clerk webhooks: no Clerk webhook secret is configured.")
    })?;
    let now = now_secs();
    let message_id = svix::verify(key, &headers, &body, now)?;
    let event: ClerkEvent = serde_json::from_slice(&body).map_err(|e| {
        AppError::bad_request("invalid_event", format!("The webhook body is not an event Roost can read ({e})."))
    })?;

    // Recording the id and acting on the event commit together, so a failure leaves the
    // delivery unrecorded and Svix's retry is handled, not skipped.
    let conn = state.db.conn()?;
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate).await?;
    if !webhooks::record_once(&tx, "clerk", &message_id, &event.kind, now).await? {
        return Ok(axum::Json(json!({ "received": true, "duplicate": true })));
    }
    let mut revoked = None;
    match event.kind.as_str() {
        "user.deleted" => {
            if let Some(user) = users::find_live_clerk(&tx, &event.data.id).await?
                && deletion::delete_account_in(&tx, &user).await?
            {
                tracing::info!(user_id = %user, "Clerk user deleted");
                revoked = Some(Revoked::User(user));
            }
        }
        "session.revoked" | "session.ended" | "session.removed" => {
            webhooks::revoke_clerk_session(&tx, &event.data.id, now).await?;
            revoked = Some(Revoked::ClerkSession { session_id: event.data.id.clone() });
            tracing::info!(kind = %event.kind, "Clerk session ended");
        }
        other => tracing::debug!(kind = other, "Clerk event ignored"),
    }
    tx.commit().await?;
    if let Some(revoked) = revoked {
        let deleted = if let Revoked::User(user) = &revoked { Some(user.clone()) } else { None };
        state.relays.revoke(revoked);
        // The agent and its data go with the account. A failure is logged with an id, and the
        // sweep of deleted users' machines retries it.
        if let Some(user) = deleted {
            let _ = state.machines.destroy(&user).await;
        }
    }
    Ok(axum::Json(json!({ "received": true, "duplicate": false })))
}

/// What the inbox keeps beside the raw body: only references, never state.
#[derive(Deserialize)]
struct StripeEnvelope {
    id: String,
    #[serde(rename = "type")]
    kind: String,
    created: i64,
    #[serde(default)]
    livemode: bool,
    api_version: Option<String>,
    data: StripeData,
}

#[derive(Deserialize)]
struct StripeData {
    object: serde_json::Map<String, Value>,
}

/// Ids and types longer than this are not Stripe's.
const MAX_ID_CHARS: usize = 255;

fn text(v: Option<&Value>) -> Option<&str> {
    v.and_then(Value::as_str).filter(|s| s.len() <= MAX_ID_CHARS)
}

pub async fn stripe(state: AppState, headers: HeaderMap, body: Bytes) -> AppResult<axum::Json<Value>> {
    use billing::stripe::signature::{self, SignatureError};
    let stripe = state
        .stripe
        .as_ref()
        .ok_or_else(|| AppError::not_found("Stripe webhooks are not configured on this server."))?;
    let header = headers
        .get("stripe-signature")
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| AppError::bad_request("missing_signature", "The Stripe-Signature header is missing."))?;
    let secrets: Vec<&str> = stripe.webhook_secrets.iter().map(|s| s.expose()).collect();
    let now = now_secs();
    signature::verify(header, &body, &secrets, now, signature::TOLERANCE_SECS).map_err(|e| {
        let code = match e {
            SignatureError::Stale => "stale_signature",
            SignatureError::Malformed | SignatureError::NoV1 | SignatureError::NoMatch => "invalid_signature",
        };
        tracing::warn!(error = %e, "a Stripe webhook was refused");
        AppError::bad_request(code, e.to_string())
    })?;
    let unreadable = || {
        AppError::bad_request(
            "invalid_event",
            "The body is not a Stripe event: it needs id, type, created and data.object.",
        )
    };
    let payload = std::str::from_utf8(&body).map_err(|_| unreadable())?;
    let event: StripeEnvelope = serde_json::from_str(payload).map_err(|_| unreadable())?;
    if !event.id.starts_with("evt_") || event.id.len() > MAX_ID_CHARS || event.kind.len() > MAX_ID_CHARS {
        return Err(unreadable());
    }
    let object = &event.data.object;
    let object_id = text(object.get("id"));
    let customer_id = text(object.get("customer")).or_else(|| text(object.get("customer").and_then(|c| c.get("id"))));
    let stored = stripe_events::NewEvent {
        id: &event.id,
        kind: &event.kind,
        object_id,
        customer_id,
        livemode: event.livemode,
        api_version: event.api_version.as_deref().filter(|v| v.len() <= MAX_ID_CHARS),
        created: event.created,
        payload,
    };
    let inserted = stripe_events::insert(&*state.db.conn()?, &stored, now).await?;
    if inserted {
        stripe.wake.notify_one();
        tracing::info!(event_id = %event.id, kind = %event.kind, "Stripe event stored");
    }
    Ok(axum::Json(json!({ "received": true, "duplicate": !inserted })))
}
