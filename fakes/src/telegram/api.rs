//! The wire side: `/bot<token>/<method>` with params from the query, a form or JSON, answers
//! in Telegram's `{"ok":…}` envelope.

use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State as AxState};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use serde_json::{Map, Value, json};

use super::{Fault, State, unix_now};

/// Telegram's own cap on a long poll.
const MAX_POLL: Duration = Duration::from_secs(50);

pub(crate) fn router(state: State) -> Router {
    Router::new()
        .route("/_fake/deliver", axum::routing::post(control_deliver))
        .route("/_fake/sent", axum::routing::post(control_sent))
        .route("/{bot}/{method}", any(call))
        .fallback(|| async { error(404, "Not Found", None) })
        .with_state(state)
}

/// For browser specs, which cannot reach the Rust handle: `{token, from_id, first_name, text}`.
async fn control_deliver(AxState(state): AxState<State>, axum::Json(body): axum::Json<Value>) -> Response {
    let fake = super::Handle(state);
    let (Some(token), Some(from), Some(text)) =
        (body["token"].as_str(), body["from_id"].as_i64(), body["text"].as_str())
    else {
        return error(400, "Bad Request: token, from_id and text are required", None);
    };
    let id = fake.deliver_dm(token, from, body["first_name"].as_str().unwrap_or("Tester"), text);
    ok(json!({ "update_id": id }))
}

/// `{token}` → the `sendMessage` params the bot made.
async fn control_sent(AxState(state): AxState<State>, axum::Json(body): axum::Json<Value>) -> Response {
    let token = body["token"].as_str().unwrap_or_default();
    ok(Value::Array(super::Handle(state).sent_messages(token)))
}

fn ok(result: Value) -> Response {
    (StatusCode::OK, axum::Json(json!({ "ok": true, "result": result }))).into_response()
}

fn error(code: u16, description: &str, parameters: Option<Value>) -> Response {
    let mut body = json!({ "ok": false, "error_code": code, "description": description });
    if let Some(p) = parameters {
        body["parameters"] = p;
    }
    (StatusCode::from_u16(code).unwrap_or(StatusCode::BAD_REQUEST), axum::Json(body)).into_response()
}

fn params(query: Option<String>, headers: &HeaderMap, body: &Bytes) -> Map<String, Value> {
    let mut out = Map::new();
    let mut add_pairs = |text: &str| {
        for (k, v) in url::form_urlencoded::parse(text.as_bytes()) {
            let value = serde_json::from_str(&v).unwrap_or(Value::String(v.to_string()));
            out.insert(k.to_string(), value);
        }
    };
    if let Some(q) = query {
        add_pairs(&q);
    }
    let content_type = headers.get("content-type").and_then(|v| v.to_str().ok()).unwrap_or("");
    if content_type.starts_with("application/json") {
        if let Ok(Value::Object(map)) = serde_json::from_slice::<Value>(body) {
            out.extend(map);
        }
    } else if content_type.starts_with("application/x-www-form-urlencoded") {
        add_pairs(&String::from_utf8_lossy(body));
    }
    out
}

async fn call(
    AxState(state): AxState<State>,
    Path((bot, method)): Path<(String, String)>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let Some(token) = bot.strip_prefix("bot") else { return error(404, "Not Found", None) };
    let params = params(query, &headers, &body);
    let (bot, fault) = {
        let mut inner = state.inner.lock().unwrap();
        let Some(bot) = inner.bots.get(token).cloned() else { return error(401, "Unauthorized", None) };
        if bot.revoked {
            return error(401, "Unauthorized", None);
        }
        inner.calls.push((token.to_string(), method.clone(), Value::Object(params.clone())));
        let at = inner.faults.iter().position(|(m, _)| m == "*" || *m == method);
        (bot, at.and_then(|i| inner.faults.remove(i)).map(|(_, f)| f))
    };
    match fault {
        Some(Fault::TooManyRequests { retry_after }) => {
            return error(
                429,
                &format!("Too Many Requests: retry after {retry_after}"),
                Some(json!({ "retry_after": retry_after })),
            );
        }
        Some(Fault::Hang(d)) => tokio::time::sleep(d).await,
        Some(Fault::ServerError) => return error(502, "Bad Gateway", None),
        None => {}
    }
    let me = json!({
        "id": bot.id, "is_bot": true, "first_name": bot.first_name, "username": bot.username,
        "can_join_groups": true, "can_read_all_group_messages": false, "supports_inline_queries": false,
        "can_connect_to_business": false, "has_main_web_app": false,
    });
    match method.as_str() {
        "getMe" => ok(me),
        "getWebhookInfo" => {
            let pending = state.inner.lock().unwrap().updates.get(token).map_or(0, |q| q.len());
            ok(json!({ "url": bot.webhook_url, "has_custom_certificate": false, "pending_update_count": pending }))
        }
        "deleteWebhook" => {
            let mut inner = state.inner.lock().unwrap();
            if let Some(b) = inner.bots.get_mut(token) {
                b.webhook_url.clear();
            }
            if params.get("drop_pending_updates") == Some(&Value::Bool(true)) {
                inner.updates.remove(token);
            }
            ok(json!(true))
        }
        "getUpdates" => get_updates(&state, token, &params).await,
        "sendMessage" => {
            let (Some(chat_id), Some(text)) = (params.get("chat_id"), params.get("text")) else {
                return error(400, "Bad Request: message text is empty", None);
            };
            let chat_id = chat_id.as_i64().or_else(|| chat_id.as_str().and_then(|s| s.parse().ok()));
            let Some(chat_id) = chat_id else { return error(400, "Bad Request: chat not found", None) };
            let message_id = {
                let mut inner = state.inner.lock().unwrap();
                inner.next_message_id += 1;
                inner.next_message_id
            };
            ok(json!({
                "message_id": message_id, "date": unix_now(), "from": me,
                "chat": { "id": chat_id, "type": "private" }, "text": text,
            }))
        }
        // setMyCommands, deleteMyCommands, sendChatAction, …: Telegram answers `true`.
        _ => ok(json!(true)),
    }
}

/// Counts a waiting poll while it is open, however it ends (OpenClaw aborts its fetch on stop).
struct Waiting<'a>(&'a State, String);

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        if let Some(n) = self.0.inner.lock().unwrap().polls_waiting.get_mut(&self.1) {
            *n = n.saturating_sub(1);
        }
    }
}

async fn get_updates(state: &State, token: &str, params: &Map<String, Value>) -> Response {
    let offset = params.get("offset").and_then(Value::as_i64);
    let limit = params.get("limit").and_then(Value::as_u64).unwrap_or(100).clamp(1, 100) as usize;
    let timeout = Duration::from_secs(params.get("timeout").and_then(Value::as_u64).unwrap_or(0)).min(MAX_POLL);
    let generation = {
        let mut inner = state.inner.lock().unwrap();
        if !inner.bots[token].webhook_url.is_empty() {
            return error(
                409,
                "Conflict: can't use getUpdates method while webhook is active; use deleteWebhook to delete the webhook first",
                None,
            );
        }
        if let (Some(offset), Some(queue)) = (offset, inner.updates.get_mut(token)) {
            queue.retain(|u| u["update_id"].as_i64().unwrap_or(0) >= offset);
        }
        let g = inner.poll_generation.entry(token.to_string()).or_default();
        *g += 1;
        let g = *g;
        *inner.polls_waiting.entry(token.to_string()).or_default() += 1;
        g
    };
    state.changed.notify_waiters();
    let _waiting = Waiting(state, token.to_string());
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let changed = state.changed.notified();
        tokio::pin!(changed);
        changed.as_mut().enable();
        {
            let inner = state.inner.lock().unwrap();
            if inner.bots[token].revoked {
                return error(401, "Unauthorized", None);
            }
            if inner.poll_generation.get(token) != Some(&generation) {
                return error(
                    409,
                    "Conflict: terminated by other getUpdates request; make sure that only one bot instance is running",
                    None,
                );
            }
            let ready: Vec<Value> = inner.updates.get(token).into_iter().flatten().take(limit).cloned().collect();
            if !ready.is_empty() || tokio::time::Instant::now() >= deadline {
                return ok(Value::Array(ready));
            }
        }
        let _ = tokio::time::timeout_at(deadline, changed).await;
    }
}
