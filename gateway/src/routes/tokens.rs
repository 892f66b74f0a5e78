//! Personal API tokens: create (shown once), list, revoke. Only from a session: a token that
//! could mint tokens would outlive its own revocation.

use axum::extract::Path;
use axum::http::{HeaderName, StatusCode, header};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::app::AppState;
use crate::auth::Revoked;
use crate::auth::{SessionUser, api_token};
use crate::db::api_tokens::{self, NewToken};
use crate::domain::now_secs;
use crate::error::{AppError, AppResult};
use crate::json::Json;

const MAX_EXPIRY_DAYS: u32 = 3650;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateToken {
    name: String,
    expires_in_days: Option<u32>,
}

#[utoipa::path(post, operation_id = "tokens_create", path = "/tokens", tag = "tokens", request_body(content = crate::openapi::Object, description = "`{name, expires_in_days?}`"), security(("session" = [])), responses((status = 201, description = "`{id, name, prefix, token, webhook_secret, created_at, expires_at}`; `token` and `webhook_secret` are shown this once", body = crate::openapi::Object), (status = 400, description = "Invalid input", body = crate::openapi::ErrorBody), (status = 401, description = "Not signed in", body = crate::openapi::ErrorBody), (status = 403, description = "Needs a browser session, not an API token", body = crate::openapi::ErrorBody)))]
pub async fn create(
    state: AppState,
    SessionUser(auth): SessionUser,
    Json(body): Json<CreateToken>,
) -> AppResult<(StatusCode, [(HeaderName, &'static str); 1], axum::Json<Value>)> {
    let name = body.name.trim();
    if name.is_empty() || name.chars().count() > 64 || name.chars().any(char::is_control) {
        return Err(AppError::bad_request(
            "invalid_name",
            "A token name must be 1 to 64 characters, without control characters.",
        ));
    }
    if body.expires_in_days.is_some_and(|d| d == 0 || d > MAX_EXPIRY_DAYS) {
        return Err(AppError::bad_request("invalid_expiry", "A token must expire in 1 to 3650 days."));
    }
    let conn = state.db.conn()?;
    let now = now_secs();
    let expires_at = body.expires_in_days.map(|d| now + i64::from(d) * 86_400);
    let fresh = api_token::generate();
    let id = uuid::Uuid::new_v4().to_string();
    let created = api_tokens::create(
        &conn,
        NewToken {
            id: &id,
            user_id: &auth.user_id,
            name,
            prefix: &fresh.visible_prefix,
            token_hash: &fresh.hash,
            created_at: now,
            expires_at,
        },
    )
    .await?;
    if !created {
        return Err(AppError::conflict(
            "too_many_tokens",
            format!(
                "You have {} API tokens, the most there can be. Revoke one before creating another.",
                api_tokens::MAX_PER_USER
            ),
        ));
    }
    let webhook_secret = new_webhook_secret(&state, &conn, &auth.user_id, &id).await?;
    tracing::info!(user_id = %auth.user_id, token_id = %id, "API token created");
    let body = json!({
        "id": id, "name": name, "prefix": fresh.visible_prefix, "token": fresh.secret,
        "webhook_secret": webhook_secret, "created_at": now, "expires_at": expires_at,
    });
    // The secret is shown once: no cache on the way may keep a copy.
    Ok((StatusCode::CREATED, [(header::CACHE_CONTROL, "no-store")], axum::Json(body)))
}

#[utoipa::path(get, operation_id = "tokens_list", path = "/tokens", tag = "tokens", security(("session" = [])), responses((status = 200, description = "`{tokens: [{id, name, prefix, created_at, expires_at, last_used_at}]}`", body = crate::openapi::Object), (status = 401, description = "Not signed in", body = crate::openapi::ErrorBody), (status = 403, description = "Needs a browser session, not an API token", body = crate::openapi::ErrorBody)))]
pub async fn list(state: AppState, SessionUser(auth): SessionUser) -> AppResult<axum::Json<Value>> {
    let tokens = api_tokens::list(&*state.db.conn()?, &auth.user_id).await?;
    Ok(axum::Json(json!({ "tokens": tokens })))
}

#[utoipa::path(delete, operation_id = "tokens_revoke", path = "/tokens/{id}", tag = "tokens", params(("id" = String, Path, description = "The token id")), security(("session" = [])), responses((status = 204, description = "Revoked"), (status = 400, description = "Invalid input", body = crate::openapi::ErrorBody), (status = 401, description = "Not signed in", body = crate::openapi::ErrorBody), (status = 403, description = "Needs a browser session, not an API token", body = crate::openapi::ErrorBody), (status = 404, description = "Not found", body = crate::openapi::ErrorBody)))]
pub async fn revoke(state: AppState, SessionUser(auth): SessionUser, Path(id): Path<String>) -> AppResult<StatusCode> {
    if uuid::Uuid::parse_str(&id).is_err() {
        return Err(AppError::not_found("That token no longer exists. Reload the page to see your tokens."));
    }
    if api_tokens::revoke(&*state.db.conn()?, &auth.user_id, &id, now_secs()).await? {
        tracing::info!(user_id = %auth.user_id, token_id = %id, "API token revoked");
        state.relays.revoke(Revoked::ApiToken { user: auth.user_id.clone(), token_id: id });
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(AppError::not_found("That token no longer exists. Reload the page to see your tokens."))
    }
}

/// A fresh webhook signing secret for the token, sealed in the database; the text is returned
/// to be shown once.
async fn new_webhook_secret(
    state: &AppState,
    conn: &libsql::Connection,
    user: &crate::domain::UserId,
    token_id: &str,
) -> AppResult<Option<String>> {
    let secret = format!("whsec_{}", crate::crypto::random_token());
    let context = crate::tasks::webhook::secret_context(token_id);
    let sealed = crate::crypto::seal(state.secret.expose(), &context, secret.as_bytes());
    let stored = api_tokens::set_webhook_secret(conn, user, token_id, &sealed, crate::crypto::SEAL_KEY_VERSION).await?;
    Ok(stored.then_some(secret))
}

/// `POST /api/tokens/{id}/webhook-secret`: replaces the token's webhook signing secret and shows
/// the new one, once (tokens made before webhooks existed have none).
#[utoipa::path(post, operation_id = "tokens_rotate_webhook_secret", path = "/tokens/{id}/webhook-secret", tag = "tokens", params(("id" = String, Path, description = "The token id")), security(("session" = [])), responses((status = 200, description = "`{id, webhook_secret}`, shown this once; the old secret no longer signs", body = crate::openapi::Object), (status = 400, description = "Invalid input", body = crate::openapi::ErrorBody), (status = 401, description = "Not signed in", body = crate::openapi::ErrorBody), (status = 403, description = "Needs a browser session, not an API token", body = crate::openapi::ErrorBody), (status = 404, description = "Not found", body = crate::openapi::ErrorBody)))]
pub async fn rotate_webhook_secret(
    state: AppState,
    SessionUser(auth): SessionUser,
    Path(id): Path<String>,
) -> AppResult<([(HeaderName, &'static str); 1], axum::Json<Value>)> {
    let gone = || AppError::not_found("That token no longer exists. Reload the page to see your tokens.");
    if uuid::Uuid::parse_str(&id).is_err() {
        return Err(gone());
    }
    let conn = state.db.conn()?;
    let secret = new_webhook_secret(&state, &conn, &auth.user_id, &id).await?.ok_or_else(gone)?;
    tracing::info!(user_id = %auth.user_id, token_id = %id, "webhook secret replaced");
    Ok(([(header::CACHE_CONTROL, "no-store")], axum::Json(json!({ "id": id, "webhook_secret": secret }))))
}
