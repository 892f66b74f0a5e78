//! What the OpenAI and Anthropic handlers share: the request log, provider-shaped errors,
//! token counting and streamed bodies with injected failures.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::body::Body;
use axum::http::{HeaderMap, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use serde_json::{Value, json};
use tokio::sync::mpsc;

use super::{FailMode, OPENCLAW_INTERNAL_CONTEXT_MARKER, RecordedRequest, Shared, lock};

pub(super) fn now_secs() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

pub(super) fn record(shared: &Shared, method: &Method, uri: &Uri, headers: &HeaderMap, body: &Bytes) -> Value {
    let json: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    let headers = headers
        .iter()
        .map(|(k, v)| (k.as_str().to_ascii_lowercase(), String::from_utf8_lossy(v.as_bytes()).into_owned()))
        .collect();
    lock(&shared.requests).push(RecordedRequest {
        method: method.to_string(),
        path: uri.path().to_string(),
        headers,
        body: json.clone(),
    });
    json
}

pub(super) fn json_response(status: StatusCode, extra: &[(&'static str, String)], body: &Value) -> Response {
    let mut b = Response::builder().status(status).header(header::CONTENT_TYPE, "application/json");
    for (k, v) in extra {
        b = b.header(*k, v.as_str());
    }
    b.body(Body::from(body.to_string())).unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response())
}

/// Text of a message `content`: a string, or an array of `{type:"text", text}` parts.
pub(super) fn content_text(content: &Value) -> String {
    match content {
        Value::String(s) => s.clone(),
        Value::Array(parts) => parts
            .iter()
            .filter(|p| p.get("type").and_then(Value::as_str).is_none_or(|t| t == "text"))
            .filter_map(|p| p.get("text").and_then(Value::as_str))
            .collect::<Vec<_>>()
            .join("\n"),
        _ => String::new(),
    }
}

pub(super) fn word_count(s: &str) -> u64 {
    s.split_whitespace().count() as u64
}

/// Last user message text, skipping OpenClaw's internal-context message.
pub(super) fn last_user_text(messages: &[Value]) -> String {
    messages
        .iter()
        .rev()
        .filter(|m| m.get("role").and_then(Value::as_str) == Some("user"))
        .map(|m| content_text(m.get("content").unwrap_or(&Value::Null)))
        .find(|t| !t.contains(OPENCLAW_INTERNAL_CONTEXT_MARKER))
        .unwrap_or_default()
}

pub(super) fn prompt_tokens(messages: &[Value], system: Option<&Value>) -> u64 {
    let sys = system.map(|s| word_count(&content_text(s))).unwrap_or(0);
    sys + messages.iter().map(|m| word_count(&content_text(m.get("content").unwrap_or(&Value::Null)))).sum::<u64>()
}

pub(super) fn reply_text(shared: &Shared, messages: &[Value]) -> String {
    match lock(&shared.reply).clone() {
        Some(r) => r,
        None => format!("Hello from the fake model: {}", last_user_text(messages).trim()),
    }
}

/// A body that yields `frames` with `delay` between them; if `drop_after` is Some(n), the
/// connection is aborted after n frames (hyper closes it without finishing the body).
pub(super) fn streaming_response(
    content_type: &str,
    frames: Vec<Bytes>,
    delay: Duration,
    drop_after: Option<usize>,
) -> Response {
    let (tx, rx) = mpsc::channel::<Result<Bytes, std::io::Error>>(4);
    tokio::spawn(async move {
        for (i, frame) in frames.into_iter().enumerate() {
            if drop_after == Some(i) {
                // Give hyper time to put the earlier chunks on the wire before the abort.
                tokio::time::sleep(delay.max(Duration::from_millis(50))).await;
                let _ = tx.send(Err(std::io::Error::other("fake llm: dropped mid-stream"))).await;
                return;
            }
            if i > 0 && !delay.is_zero() {
                tokio::time::sleep(delay).await;
            }
            if tx.send(Ok(frame)).await.is_err() {
                return;
            }
        }
    });
    let stream = futures_util::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|item| (item, rx)) });
    Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, content_type)
        .header(header::CACHE_CONTROL, "no-cache")
        .body(Body::from_stream(stream))
        .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response())
}

/// Splits a body into three byte ranges (for DropMidStream on non-streaming requests).
pub(super) fn split3(body: String) -> Vec<Bytes> {
    let b = Bytes::from(body);
    let third = b.len() / 3;
    vec![b.slice(..third), b.slice(third..2 * third), b.slice(2 * third..)]
}

#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Flavor {
    OpenAi,
    Anthropic,
}

pub(super) fn provider_error(flavor: Flavor, status: u16, message: &str) -> Response {
    let code = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut extra: Vec<(&'static str, String)> = Vec::new();
    if status == 429 {
        extra.push(("retry-after", "1".to_string()));
    }
    let body = match flavor {
        Flavor::OpenAi => {
            extra.push(("x-request-id", format!("req_{}", uuid::Uuid::new_v4().simple())));
            let (ty, c): (&str, Value) = match status {
                400 => ("invalid_request_error", Value::Null),
                401 => ("invalid_request_error", json!("invalid_api_key")),
                403 => ("invalid_request_error", json!("unsupported_country_region_territory")),
                404 => ("invalid_request_error", json!("model_not_found")),
                408 => ("timeout", Value::Null),
                409 => ("conflict", Value::Null),
                412 => ("precondition_failed", Value::Null),
                429 => ("requests", json!("rate_limit_exceeded")),
                _ => ("server_error", Value::Null),
            };
            json!({"error": {"message": message, "type": ty, "param": null, "code": c}})
        }
        Flavor::Anthropic => {
            extra.push(("request-id", format!("req_{}", uuid::Uuid::new_v4().simple())));
            let ty = match status {
                400 | 409 | 412 => "invalid_request_error",
                401 => "authentication_error",
                403 => "permission_error",
                404 => "not_found_error",
                408 => "timeout_error",
                413 => "request_too_large",
                429 => "rate_limit_error",
                503 | 529 => "overloaded_error",
                _ => "api_error",
            };
            json!({"type": "error", "error": {"type": ty, "message": message}})
        }
    };
    json_response(code, &extra, &body)
}

pub(super) fn default_message(status: u16) -> &'static str {
    match status {
        408 => "Request timed out.",
        409 => "Conflict: a concurrent request is being processed.",
        412 => "Precondition failed.",
        429 => "Rate limit reached. Please try again in 1s.",
        500 => "The server had an error while processing your request.",
        502 => "Bad gateway.",
        503 => "The server is overloaded or not ready yet.",
        _ => "Injected failure.",
    }
}

/// Pops the next injected failure. `Some(response)` ends the request (Status / Hang);
/// the returned flag is true for DropMidStream.
pub(super) async fn apply_failure(shared: &Shared, flavor: Flavor) -> (Option<Response>, bool) {
    let next = lock(&shared.fails).pop_front();
    match next {
        None => (None, false),
        Some(FailMode::Status(s)) => (Some(provider_error(flavor, s, default_message(s))), false),
        Some(FailMode::Hang) => {
            let mut rx = shared.shutdown.subscribe();
            let _ = rx.wait_for(|stopped| *stopped).await;
            (Some(provider_error(flavor, 503, "fake llm shutting down")), false)
        }
        Some(FailMode::DropMidStream) => (None, true),
    }
}
