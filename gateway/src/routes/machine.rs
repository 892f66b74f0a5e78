//! The user's agent machine: its state, and stop / restart.

use axum::http::StatusCode;
use serde_json::{Value, json};

use crate::app::AppState;
use crate::auth::AuthUser;
use crate::db::{machine_events, machines};
use crate::error::AppResult;

/// The newest lifecycle events `GET /api/machine` shows (the table keeps more).
const HISTORY_SHOWN: u32 = 20;
/// The "usual" start time is the median of the server's last this many starts.
const STARTS_MEASURED: u32 = 20;

#[utoipa::path(get, operation_id = "machine_get", path = "/machine", tag = "agent", security(("session" = []), ("api_token" = [])), responses((status = 200, description = "The agent's state and stage", body = crate::openapi::Object), (status = 401, description = "Not signed in", body = crate::openapi::ErrorBody)))]
pub async fn get(state: AppState, auth: AuthUser) -> AppResult<axum::Json<Value>> {
    let row = machines::find(&state.db, &auth.user_id).await?;
    let (machine_state, stage, detail, since) = match row {
        Some(r) => (r.state, r.stage, r.detail, Some(r.since)),
        None => ("idle_stopped".to_string(), "stopped".to_string(), "not started yet".to_string(), None),
    };
    let activity = state.machines.activity();
    let last_active_secs_ago = activity.last_active(&auth.user_id).map(|t| t.elapsed().as_secs());
    let idle_timeout_secs = state.machines.idle_policy().timeout.map(|t| t.as_secs());
    let history: Vec<Value> = machine_events::recent(&state.db, &auth.user_id, HISTORY_SHOWN)
        .await?
        .into_iter()
        .map(|e| json!({ "at": e.at, "state": e.state, "stage": e.stage, "reason": e.reason }))
        .collect();
    let starts = machine_events::recent_start_secs(&state.db, STARTS_MEASURED).await?;
    Ok(axum::Json(json!({
        "state": machine_state,
        "stage": stage,
        "detail": detail,
        "since": since,
        "in_use": state.relays.socket_count(&auth.user_id) > 0 || activity.is_busy(&auth.user_id),
        "last_active_secs_ago": last_active_secs_ago,
        "idle_policy": { "stop_after_secs": idle_timeout_secs },
        "memory_bytes": state.machines.memory_bytes(&auth.user_id).await,
        "slots": { "max": state.machines.slots().max(), "waiting": state.machines.slots().waiting() },
        "history": history,
        "now": crate::domain::now_secs(),
        "starts": { "usual_secs": median(&starts), "measured": starts.len() },
    })))
}

/// The middle of `secs` (the lower middle of an even count); `None` for none.
fn median(secs: &[i64]) -> Option<i64> {
    let mut sorted = secs.to_vec();
    sorted.sort_unstable();
    sorted.get(sorted.len().saturating_sub(1) / 2).copied()
}

#[utoipa::path(post, operation_id = "machine_stop", path = "/machine/stop", tag = "agent", security(("session" = []), ("api_token" = [])), responses((status = 204, description = "Stopped"), (status = 401, description = "Not signed in", body = crate::openapi::ErrorBody)))]
pub async fn stop(state: AppState, auth: AuthUser) -> AppResult<StatusCode> {
    // Before the stop: each tab then closes as stopped, not as a lost agent to reconnect to.
    state.relays.agent_stopped(&auth.user_id);
    state.machines.stop_because(&auth.user_id, crate::machines::STOPPED_BY_YOU).await.map_err(start_error)?;
    Ok(StatusCode::NO_CONTENT)
}

/// Stops the agent and starts it again in the background; the chat page shows the stages.
#[utoipa::path(post, operation_id = "machine_restart", path = "/machine/restart", tag = "agent", security(("session" = []), ("api_token" = [])), responses((status = 202, description = "Restarting", body = crate::openapi::Object), (status = 401, description = "Not signed in", body = crate::openapi::ErrorBody)))]
pub async fn restart(state: AppState, auth: AuthUser) -> AppResult<StatusCode> {
    if let Some(refusal) = state.machines.start_refusal(&auth.user_id).await {
        return Err(crate::error::AppError::forbidden(refusal.code, refusal.message));
    }
    state.machines.stop_because(&auth.user_id, "restarting at your request").await.map_err(start_error)?;
    let machines = state.machines.clone();
    let user = auth.user_id.clone();
    tokio::spawn(async move {
        if let Err(e) = machines.ensure_ready(&user).await {
            tracing::warn!(user_id = %user, error = %e, "restart failed");
        }
    });
    Ok(StatusCode::ACCEPTED)
}

fn start_error(e: crate::machines::StartError) -> crate::error::AppError {
    crate::error::AppError::new(StatusCode::SERVICE_UNAVAILABLE, e.code, e.message)
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_usual_start_is_the_median() {
        assert_eq!(super::median(&[]), None);
        assert_eq!(super::median(&[30]), Some(30));
        assert_eq!(super::median(&[50, 10, 20]), Some(20));
        assert_eq!(super::median(&[40, 10, 30, 20]), Some(20));
    }
}
