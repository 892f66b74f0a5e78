//! `POST /webhooks/clerk`: Svix-signed events, handled once per `svix-id`.

use axum::http::HeaderMap;
use bytes::Bytes;
use libsql::TransactionBehavior;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::app::AppState;
use crate::auth::Revoked;
use crate::auth::svix;
use crate::db::{deletion, users, webhooks};
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
    let key =
        state.clerk_webhook_key.as_ref().ok_or_else(|| AppError::not_found("Clerk webhooks are not configured"))?;
    let now = now_secs();
    let message_id = svix::verify(key, &headers, &body, now)?;
    let event: ClerkEvent = serde_json::from_slice(&body)
        .map_err(|e| AppError::bad_request("invalid_event", format!("unreadable event: {e}")))?;

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
