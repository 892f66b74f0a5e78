//! The task API for scripts and CI: submit a prompt with an API token, poll for the answer,
//! list, cancel. Runs happen in `crate::tasks`.

use axum::extract::Path;
use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::app::AppState;
use crate::auth::{AuthUser, AuthVia};
use crate::chat::SessionKey;
use crate::db::chat_sessions;
use crate::db::tasks::{self, NewTask, Status};
use crate::domain::now_secs;
use crate::error::{AppError, AppResult};
use crate::json::{Json, Query};
use crate::tasks::{ssrf, view};

pub const MAX_PROMPT_BYTES: usize = 32 * 1024;
const DEFAULT_LIMIT: u32 = 20;
const MAX_LIMIT: u32 = 100;

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewTaskBody {
    /// What to ask the agent (1 to 32 KiB).
    prompt: String,
    /// An existing chat to run in (`main`, or a chat's key); default: a new chat of its own.
    session: Option<String>,
    /// Where to POST the finished task, signed with the token's webhook secret.
    webhook_url: Option<String>,
}

#[derive(Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// Only tasks in this state: queued, running, completed, failed or cancelled.
    status: Option<String>,
    /// At most this many (1 to 100, default 20).
    limit: Option<u32>,
    /// `next_cursor` of the previous page.
    cursor: Option<String>,
}

fn not_found() -> AppError {
    AppError::not_found("There is no such task. Check its id.")
}

fn bad_prompt() -> AppError {
    AppError::bad_request(
        "invalid_prompt",
        format!("A task needs a prompt of 1 to {MAX_PROMPT_BYTES} bytes, without NUL characters."),
    )
}

/// `POST /api/v1/tasks`: queues a prompt for the caller's agent; 202 with its id.
#[utoipa::path(post, operation_id = "tasks_create", path = "/v1/tasks", tag = "tasks", request_body = NewTaskBody,
    security(("api_token" = [])),
    responses(
        (status = 202, description = "Queued: `{id, status: \"queued\"}`", body = crate::openapi::Object),
        (status = 400, description = "Bad prompt, session or webhook URL", body = crate::openapi::ErrorBody),
        (status = 401, description = "No valid API token", body = crate::openapi::ErrorBody),
        (status = 403, description = "Not an API token", body = crate::openapi::ErrorBody),
        (status = 429, description = "Rate or concurrency limit of the token", body = crate::openapi::ErrorBody),
    ))]
pub async fn create(
    state: AppState,
    auth: AuthUser,
    Json(body): Json<NewTaskBody>,
) -> AppResult<(StatusCode, axum::Json<Value>)> {
    let AuthVia::ApiToken { token_id } = &auth.via else {
        return Err(AppError::forbidden(
            "api_token_required",
            "Tasks are submitted with an API token (Authorization: Bearer rst_…), not a signed-in browser. \
             Create one under Settings → API tokens.",
        ));
    };
    state.tasks.limiter.check(token_id)?;
    let prompt = body.prompt.trim();
    if prompt.is_empty() || body.prompt.len() > MAX_PROMPT_BYTES || prompt.contains('\0') {
        return Err(bad_prompt());
    }
    let session = match body.session.as_deref() {
        Some(raw) => SessionKey::parse(raw).map_err(|_| {
            AppError::bad_request(
                "invalid_session",
                "A session is `main` or a chat's key: 1 to 64 letters, digits, '-' or '_'.",
            )
        })?,
        None => SessionKey::generate(),
    };
    let conn = state.db.conn()?;
    let webhook_url = match body.webhook_url.as_deref() {
        Some(raw) => {
            let allow = state.tasks.settings.allow_private_webhooks;
            let target = ssrf::check(raw, allow, &state.tasks.resolver)
                .await
                .map_err(|refused| AppError::bad_request("invalid_webhook_url", refused.0))?;
            if crate::db::api_tokens::webhook_secret(&conn, token_id).await?.is_none() {
                return Err(AppError::bad_request(
                    "no_webhook_secret",
                    "This API token has no webhook secret yet. Make one with POST /api/tokens/{id}/webhook-secret \
                     (signed in), then submit again.",
                ));
            }
            Some(target.url.to_string())
        }
        None => None,
    };
    if body.session.is_none() {
        let title: String = format!("Task: {}", prompt.chars().take(60).collect::<String>());
        let title = title.replace(char::is_control, " ");
        // The chat shows in the user's list; at the chat limit the task runs all the same.
        chat_sessions::create(&conn, &auth.user_id, &session, &title).await?;
    }
    let id = uuid::Uuid::new_v4().to_string();
    let limit = state.tasks.settings.concurrency_per_token;
    let new = NewTask {
        id: &id,
        user_id: &auth.user_id,
        token_id,
        prompt,
        session_key: session.as_str(),
        webhook_url: webhook_url.as_deref(),
        created_at: now_secs(),
    };
    if !tasks::insert(&conn, new, limit).await? {
        return Err(AppError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "too_many_tasks",
            format!("This token has {limit} tasks queued or running, the most it may. Wait for one to finish."),
        )
        .retry_after(5));
    }
    tracing::info!(user_id = %auth.user_id, task_id = %id, "task queued");
    state.tasks.wake();
    Ok((StatusCode::ACCEPTED, axum::Json(json!({ "id": id, "status": "queued" }))))
}

async fn shown(state: &AppState, task: &tasks::Task) -> AppResult<Value> {
    let credits = tasks::credits_used(&*state.db.conn()?, task, now_secs(), view::CREDIT_GRACE_SECS).await?;
    Ok(view::task_json(task, credits))
}

/// `GET /api/v1/tasks/{id}`: one of the caller's tasks.
#[utoipa::path(get, operation_id = "tasks_get", path = "/v1/tasks/{id}", tag = "tasks", params(("id" = String, Path, description = "The task id")),
    security(("api_token" = []), ("session" = [])),
    responses(
        (status = 200, description = "The task", body = crate::openapi::Task),
        (status = 401, description = "Not signed in", body = crate::openapi::ErrorBody),
        (status = 404, description = "No such task of the caller's", body = crate::openapi::ErrorBody),
    ))]
pub async fn get(state: AppState, auth: AuthUser, Path(id): Path<String>) -> AppResult<axum::Json<Value>> {
    if uuid::Uuid::parse_str(&id).is_err() {
        return Err(not_found());
    }
    let task = tasks::find(&*state.db.conn()?, &auth.user_id, &id).await?.ok_or_else(not_found)?;
    Ok(axum::Json(shown(&state, &task).await?))
}

fn parse_cursor(raw: &str) -> Option<(i64, String)> {
    let (at, id) = raw.split_once('.')?;
    uuid::Uuid::parse_str(id).ok()?;
    Some((at.parse().ok()?, id.to_string()))
}

/// `GET /api/v1/tasks`: the caller's tasks, newest first.
#[utoipa::path(get, operation_id = "tasks_list", path = "/v1/tasks", tag = "tasks", params(ListQuery), security(("api_token" = []), ("session" = [])),
    responses(
        (status = 200, description = "`{tasks: [Task], next_cursor}`", body = crate::openapi::Object),
        (status = 400, description = "Bad status, limit or cursor", body = crate::openapi::ErrorBody),
        (status = 401, description = "Not signed in", body = crate::openapi::ErrorBody),
    ))]
pub async fn list(state: AppState, auth: AuthUser, Query(query): Query<ListQuery>) -> AppResult<axum::Json<Value>> {
    let status = match query.status.as_deref() {
        None | Some("") => None,
        Some(raw) => Some(Status::parse(raw).ok_or_else(|| {
            AppError::bad_request("invalid_status", "status is one of queued, running, completed, failed or cancelled.")
        })?),
    };
    let limit = query.limit.unwrap_or(DEFAULT_LIMIT);
    if !(1..=MAX_LIMIT).contains(&limit) {
        return Err(AppError::bad_request("invalid_limit", format!("limit is 1 to {MAX_LIMIT}.")));
    }
    let cursor = match query.cursor.as_deref() {
        None | Some("") => None,
        Some(raw) => Some(parse_cursor(raw).ok_or_else(|| {
            AppError::bad_request(
                "invalid_cursor",
                "That cursor is not one this API gave out. Start from the first page.",
            )
        })?),
    };
    let before = cursor.as_ref().map(|(at, id)| (*at, id.as_str()));
    let found = tasks::list(&*state.db.conn()?, &auth.user_id, status, before, limit).await?;
    let next_cursor =
        (found.len() == limit as usize).then(|| found.last().map(|t| format!("{}.{}", t.created_at, t.id))).flatten();
    let mut shown_tasks = Vec::with_capacity(found.len());
    for task in &found {
        shown_tasks.push(shown(&state, task).await?);
    }
    Ok(axum::Json(json!({ "tasks": shown_tasks, "next_cursor": next_cursor })))
}

/// `POST /api/v1/tasks/{id}/cancel`: a queued task is cancelled at once, a running one aborted.
#[utoipa::path(post, operation_id = "tasks_cancel", path = "/v1/tasks/{id}/cancel", tag = "tasks",
    params(("id" = String, Path, description = "The task id")), security(("api_token" = []), ("session" = [])),
    responses(
        (status = 202, description = "Cancelled, or its abort asked for (poll the task)", body = crate::openapi::Task),
        (status = 401, description = "Not signed in", body = crate::openapi::ErrorBody),
        (status = 404, description = "No such task of the caller's", body = crate::openapi::ErrorBody),
        (status = 409, description = "The task has finished already", body = crate::openapi::ErrorBody),
    ))]
pub async fn cancel(
    state: AppState,
    auth: AuthUser,
    Path(id): Path<String>,
) -> AppResult<(StatusCode, axum::Json<Value>)> {
    if uuid::Uuid::parse_str(&id).is_err() {
        return Err(not_found());
    }
    let conn = state.db.conn()?;
    match tasks::request_cancel(&conn, &auth.user_id, &id, now_secs()).await? {
        None => {
            return Err(match tasks::find(&conn, &auth.user_id, &id).await? {
                Some(task) => AppError::conflict(
                    "task_finished",
                    format!("This task has {} already; there is nothing to cancel.", task.status.as_str()),
                ),
                None => not_found(),
            });
        }
        Some(true) => {
            // Its runner may be waking the agent for it: that wait ends now too.
            state.tasks.cancel_here(&id);
            state.tasks.webhooks_due.notify_one();
        }
        Some(false) => state.tasks.cancel_here(&id),
    }
    tracing::info!(user_id = %auth.user_id, task_id = %id, "task cancel asked for");
    let task = tasks::find(&conn, &auth.user_id, &id).await?.ok_or_else(not_found)?;
    Ok((StatusCode::ACCEPTED, axum::Json(shown(&state, &task).await?)))
}
