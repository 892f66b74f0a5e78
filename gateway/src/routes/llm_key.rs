//! `/api/me/llm-key`: the user's own OpenAI or Anthropic key (see `crate::llm::own_key`). Saving
//! and removing need a signed-in session, so a leaked API token cannot swap the key its owner's
//! agent uses; reading it (provider, model, last four, state) works with either.

use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::app::{App, AppState};
use crate::auth::{AuthUser, SessionUser};
use crate::db::llm_keys::{self, StoredKey};
use crate::domain::UserId;
use crate::error::AppResult;
use crate::json::Json;
use crate::llm::own_key::{self, ProviderKey};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SaveKey {
    provider: String,
    key: String,
    model: Option<String>,
}

/// What is shown of a saved key: never the key, only its last four characters.
fn view(app: &App, row: Option<&StoredKey>) -> Value {
    let debited = app.llm.own_keys().debit;
    match row {
        None => json!({ "key": null, "debited": debited }),
        Some(row) => json!({
            "key": {
                "provider": row.provider,
                "model": row.model,
                "last4": row.last4,
                "added_at": row.created_at,
                "status": if row.failing_since.is_some() { "failing" } else { "working" },
                "failing_since": row.failing_since,
            },
            "debited": debited,
        }),
    }
}

async fn current(app: &App, user: &UserId) -> AppResult<Value> {
    let row = llm_keys::find(&*app.db.conn()?, user).await?;
    Ok(view(app, row.as_ref()))
}

#[utoipa::path(get, operation_id = "llm_key_get", path = "/me/llm-key", tag = "account", security(("session" = []), ("api_token" = [])), responses((status = 200, description = "`{key: {provider, model, last4, added_at, status, failing_since} | null, debited}`", body = crate::openapi::Object), (status = 401, description = "Not signed in", body = crate::openapi::ErrorBody)))]
pub async fn get(state: AppState, auth: AuthUser) -> AppResult<axum::Json<Value>> {
    Ok(axum::Json(current(&state, &auth.user_id).await?))
}

/// Checks the key with its provider (one model-list call), then saves it sealed, replacing any
/// earlier key. The next model call of the user's agent uses it.
#[utoipa::path(put, operation_id = "llm_key_put", path = "/me/llm-key", tag = "account", request_body(content = crate::openapi::Object, description = "`{provider: \"anthropic\"|\"openai\", key, model?}`"), security(("session" = [])), responses((status = 200, description = "Saved: the key as `GET` shows it", body = crate::openapi::Object), (status = 400, description = "Invalid input", body = crate::openapi::ErrorBody), (status = 401, description = "Not signed in", body = crate::openapi::ErrorBody), (status = 403, description = "Needs a browser session, not an API token", body = crate::openapi::ErrorBody), (status = 422, description = "The provider refused the key, or the model is not offered", body = crate::openapi::ErrorBody), (status = 504, description = "The provider did not answer in time", body = crate::openapi::ErrorBody)))]
pub async fn put(
    state: AppState,
    SessionUser(auth): SessionUser,
    Json(body): Json<SaveKey>,
) -> AppResult<axum::Json<Value>> {
    let provider = own_key::parse_provider(&body.provider)?;
    let key = ProviderKey::parse(provider, &body.key)?;
    own_key::check_serves_agents(&state, provider)?;
    let offered = own_key::list_models(&state, provider, &key).await?;
    let model = own_key::choose_model(provider, body.model.as_deref(), &offered, state.llm_model())?;
    if state.llm.own_keys().debit && state.catalog.price(&model).is_none() {
        return Err(crate::error::AppError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "model_not_offered",
            format!(
                "This server charges credits for calls with your own key, so the model must be one it prices: {}.",
                state.catalog.offered().join(", ")
            ),
        ));
    }
    let row = own_key::sealed(&state, &auth.user_id, provider, &key, model);
    llm_keys::upsert(&*state.db.conn()?, &auth.user_id, &row).await?;
    // A refusal remembered for the old key explains nothing about the new one.
    state.credit_refusals.forget(&auth.user_id);
    tracing::info!(user_id = %auth.user_id, provider = provider.as_str(), "a user saved their own LLM key");
    Ok(axum::Json(view(&state, Some(&row))))
}

/// Removes the key: the next model call goes with the operator's key and model again.
#[utoipa::path(delete, operation_id = "llm_key_delete", path = "/me/llm-key", tag = "account", security(("session" = [])), responses((status = 204, description = "Removed (or there was none)"), (status = 401, description = "Not signed in", body = crate::openapi::ErrorBody), (status = 403, description = "Needs a browser session, not an API token", body = crate::openapi::ErrorBody)))]
pub async fn delete(state: AppState, SessionUser(auth): SessionUser) -> AppResult<StatusCode> {
    if llm_keys::delete(&*state.db.conn()?, &auth.user_id).await? {
        state.credit_refusals.forget(&auth.user_id);
        tracing::info!(user_id = %auth.user_id, "a user removed their own LLM key");
    }
    Ok(StatusCode::NO_CONTENT)
}
