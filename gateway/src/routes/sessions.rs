//! Chat sessions and their history over HTTP.

use std::time::Duration;

use axum::extract::Path;
use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::app::AppState;
use crate::auth::AuthUser;
use crate::chat::SessionKey;
use crate::chat::history::{self, MAX_LIMIT};
use crate::db::chat_messages;
use crate::db::chat_sessions::{self as sessions, Created, MAX_SEARCH, MAX_SESSIONS, Shelf};
use crate::error::{AppError, AppResult};
use crate::json::{Json, Query};

/// A page load waits at most this long for fresh history before showing the cache.
const FRESH_WAIT: Duration = Duration::from_millis(1500);

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewSession {
    title: Option<String>,
}

/// `PATCH /api/sessions/{key}`: a new title, archive (`true`) or bring back (`false`), or both.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Change {
    title: Option<String>,
    archived: Option<bool>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    /// Title search (contains, any case).
    q: Option<String>,
    /// `true`: the archived chats instead.
    archived: Option<bool>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HistoryQuery {
    limit: Option<u32>,
}

pub fn too_many_sessions() -> AppError {
    AppError::conflict(
        "too_many_sessions",
        format!("You have {MAX_SESSIONS} chats, the most there can be. Delete one before starting another."),
    )
}

fn clean_title(raw: &str) -> Result<String, AppError> {
    let title = raw.trim();
    if title.is_empty() || title.chars().count() > 120 || title.chars().any(char::is_control) {
        return Err(AppError::bad_request(
            "invalid_title",
            "A chat title must be 1 to 120 characters, without control characters.",
        ));
    }
    Ok(title.to_string())
}

/// A read only: the main chat is listed whether or not it has a row yet.
#[utoipa::path(get, operation_id = "sessions_list", path = "/sessions", tag = "chats", params(("q" = Option<String>, Query, description = "Title search"), ("archived" = Option<String>, Query, description = "`true`: the archived chats")), security(("session" = []), ("api_token" = [])), responses((status = 200, description = "`{sessions: [{key, title, created_at, updated_at, titled, archived_at}]}`", body = crate::openapi::Object), (status = 400, description = "Invalid input", body = crate::openapi::ErrorBody), (status = 401, description = "Not signed in", body = crate::openapi::ErrorBody)))]
pub async fn list(state: AppState, auth: AuthUser, Query(query): Query<ListQuery>) -> AppResult<axum::Json<Value>> {
    let search = match query.q.as_deref().map(str::trim) {
        None | Some("") => None,
        Some(q) if q.chars().count() > MAX_SEARCH || q.chars().any(char::is_control) => {
            return Err(AppError::bad_request(
                "invalid_search",
                format!("Search for at most {MAX_SEARCH} characters, without control characters."),
            ));
        }
        Some(q) => Some(q),
    };
    let shelf = if query.archived == Some(true) { Shelf::Archived } else { Shelf::Listed };
    let mut list = sessions::list_where(&*state.db.conn()?, &auth.user_id, shelf, search).await?;
    let main = SessionKey::main();
    let main_title = history::default_title(&main);
    let main_matches = search.is_none_or(|q| main_title.to_lowercase().contains(&q.to_lowercase()));
    let main_has_row = sessions::find(&*state.db.conn()?, &auth.user_id, &main).await?.is_some();
    if shelf == Shelf::Listed && !main_has_row && main_matches {
        list.push(sessions::Session {
            key: main.as_str().to_string(),
            title: main_title,
            created_at: 0,
            updated_at: 0,
            titled: false,
            archived_at: None,
        });
    }
    Ok(axum::Json(json!({ "sessions": list })))
}

#[utoipa::path(post, operation_id = "sessions_create", path = "/sessions", tag = "chats", request_body(content = crate::openapi::Object, description = "`{title?}`"), security(("session" = []), ("api_token" = [])), responses((status = 201, description = "The new chat (200: an unused one reused)", body = crate::openapi::Object), (status = 400, description = "Invalid input", body = crate::openapi::ErrorBody), (status = 401, description = "Not signed in", body = crate::openapi::ErrorBody)))]
pub async fn create(
    state: AppState,
    auth: AuthUser,
    Json(body): Json<NewSession>,
) -> AppResult<(StatusCode, axum::Json<Value>)> {
    let title = body.title.as_deref().map(clean_title).transpose()?;
    let conn = state.db.conn()?;
    // "New chat" reuses an empty one rather than piling them up.
    if title.is_none()
        && let Some(unused) = sessions::find_unused(&conn, &auth.user_id).await?
    {
        return Ok((StatusCode::OK, axum::Json(json!(unused))));
    }
    let title = title.unwrap_or_else(|| "New chat".into());
    let key = SessionKey::generate();
    if let Created::AtLimit = sessions::create(&conn, &auth.user_id, &key, &title).await? {
        return Err(too_many_sessions());
    }
    let session = sessions::find(&conn, &auth.user_id, &key)
        .await?
        .ok_or_else(|| AppError::internal(anyhow::anyhow!("session vanished")))?;
    Ok((StatusCode::CREATED, axum::Json(json!(session))))
}

#[utoipa::path(patch, operation_id = "sessions_change", path = "/sessions/{key}", tag = "chats", params(("key" = String, Path, description = "The chat's key")), request_body(content = crate::openapi::Object, description = "`{title?, archived?}`"), security(("session" = []), ("api_token" = [])), responses((status = 200, description = "The chat", body = crate::openapi::Object), (status = 400, description = "Invalid input", body = crate::openapi::ErrorBody), (status = 401, description = "Not signed in", body = crate::openapi::ErrorBody), (status = 404, description = "Not found", body = crate::openapi::ErrorBody)))]
pub async fn change(
    state: AppState,
    auth: AuthUser,
    Path(key): Path<String>,
    Json(body): Json<Change>,
) -> AppResult<axum::Json<Value>> {
    let key = SessionKey::parse(&key)?;
    if body.title.is_none() && body.archived.is_none() {
        return Err(AppError::bad_request("nothing_to_change", "Send a new title, or whether to archive the chat."));
    }
    let title = body.title.as_deref().map(clean_title).transpose()?;
    if body.archived == Some(true) && key.is_main() {
        return Err(AppError::bad_request(
            "main_chat",
            "The main chat cannot be archived: your agent's channels talk in it. Rename it instead.",
        ));
    }
    let conn = state.db.conn()?;
    let gone = || AppError::not_found("That chat no longer exists. Reload the page to see your chats.");
    if let Some(title) = &title
        && !sessions::rename(&conn, &auth.user_id, &key, title).await?
    {
        return Err(gone());
    }
    if let Some(archived) = body.archived
        && !sessions::set_archived(&conn, &auth.user_id, &key, archived).await?
    {
        return Err(gone());
    }
    Ok(axum::Json(json!(sessions::find(&conn, &auth.user_id, &key).await?.ok_or_else(gone)?)))
}

#[utoipa::path(delete, operation_id = "sessions_delete", path = "/sessions/{key}", tag = "chats", params(("key" = String, Path, description = "The chat's key")), security(("session" = []), ("api_token" = [])), responses((status = 204, description = "Deleted"), (status = 400, description = "Invalid input", body = crate::openapi::ErrorBody), (status = 401, description = "Not signed in", body = crate::openapi::ErrorBody), (status = 404, description = "Not found", body = crate::openapi::ErrorBody)))]
pub async fn delete(state: AppState, auth: AuthUser, Path(key): Path<String>) -> AppResult<StatusCode> {
    let key = SessionKey::parse(&key)?;
    if !sessions::delete(&*state.db.conn()?, &auth.user_id, &key).await? {
        return Err(AppError::not_found("That chat no longer exists. Reload the page to see your chats."));
    }
    // The transcript on the agent goes too, if the agent is up; a sleeping agent keeps it.
    if let Some(hub) = state.relays.existing_hub(&auth.user_id).await
        && let Err(e) = delete_on_agent(&hub, &key).await
    {
        tracing::warn!(error = %e, "deleting the agent's transcript failed");
    }
    Ok(StatusCode::NO_CONTENT)
}

/// A plain `sessions.delete` needs admin scope; archive-then-delete needs only write, and the
/// archive must name the session's current id.
async fn delete_on_agent(hub: &crate::relay::Hub, key: &SessionKey) -> anyhow::Result<()> {
    let timeout = Duration::from_secs(5);
    let ok = |reply: Value, what: &str| {
        if reply["ok"] == true { Ok(reply) } else { Err(anyhow::anyhow!("{what}: {}", reply["error"])) }
    };
    let history =
        ok(hub.call("chat.history", json!({ "sessionKey": key.as_str(), "limit": 1 }), timeout).await?, "history")?;
    let Some(session_id) = history["payload"]["sessionId"].as_str() else { return Ok(()) };
    let archive = json!({ "key": key.as_str(), "archived": true, "expectedSessionId": session_id });
    ok(hub.call("sessions.patch", archive, timeout).await?, "archive")?;
    ok(hub.call("sessions.delete", json!({ "key": key.as_str(), "archivedOnly": true }), timeout).await?, "delete")?;
    Ok(())
}

#[utoipa::path(get, operation_id = "sessions_history", path = "/sessions/{key}/history", tag = "chats", params(("key" = String, Path, description = "The chat's key"), ("limit" = Option<String>, Query, description = "At most this many messages")), security(("session" = []), ("api_token" = [])), responses((status = 200, description = "`{messages: [{role, text, ts}], …}`", body = crate::openapi::Object), (status = 400, description = "Invalid input", body = crate::openapi::ErrorBody), (status = 401, description = "Not signed in", body = crate::openapi::ErrorBody), (status = 404, description = "Not found", body = crate::openapi::ErrorBody)))]
pub async fn history(
    state: AppState,
    auth: AuthUser,
    Path(key): Path<String>,
    Query(query): Query<HistoryQuery>,
) -> AppResult<axum::Json<Value>> {
    let key = SessionKey::parse(&key)?;
    let limit = query.limit.unwrap_or(100);
    if limit == 0 || limit > MAX_LIMIT {
        return Err(AppError::bad_request("invalid_limit", "Ask for between 1 and 200 messages at a time."));
    }
    let conn = state.db.conn()?;
    if sessions::find(&conn, &auth.user_id, &key).await?.is_none() && !key.is_main() {
        return Err(AppError::not_found("That chat no longer exists. Reload the page to see your chats."));
    }
    if let Ok(Ok(Some(fresh))) = tokio::time::timeout(FRESH_WAIT, history::refresh(&state, &auth.user_id, &key)).await {
        let start = fresh.len().saturating_sub(limit as usize);
        return Ok(axum::Json(
            json!({ "messages": with_ends(&conn, &auth, &key, &fresh[start..]).await?, "stale": false }),
        ));
    }
    let cached = chat_messages::cached(&conn, &auth.user_id, &key, limit).await?;
    Ok(axum::Json(json!({ "messages": with_ends(&conn, &auth, &key, &cached).await?, "stale": true })))
}

/// The messages, each stopped or failed reply marked with how it ended (`end`).
async fn with_ends(
    conn: &libsql::Connection,
    auth: &AuthUser,
    key: &SessionKey,
    messages: &[crate::chat::Message],
) -> AppResult<Vec<Value>> {
    let mut values: Vec<Value> = messages.iter().map(|m| json!(m)).collect();
    let ends = crate::db::chat_run_ends::of(conn, &auth.user_id, key).await?;
    crate::relay::run_ends::mark(&mut values, &ends);
    Ok(values)
}
