//! Stateful in-process fake LLM provider: OpenAI-compatible (`/v1/chat/completions`,
//! `/v1/models`) and Anthropic-compatible (`/v1/messages`), streaming and non-streaming,
//! with a failure-injection queue and a request log.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::body::Body;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use bytes::Bytes;
use serde_json::{Value, json};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

/// Marker of the extra user message OpenClaw adds; skipped when picking the user's text.
pub const OPENCLAW_INTERNAL_CONTEXT_MARKER: &str = "<<<BEGIN_OPENCLAW_INTERNAL_CONTEXT>>>";

/// Options for [`FakeLlm::spawn`].
#[derive(Clone, Debug)]
pub struct FakeLlmOptions {
    /// Expected `Authorization: Bearer <key>` (OpenAI) / `x-api-key: <key>` (Anthropic).
    pub api_key: String,
    /// Fixed reply text; `None` = "Hello from the fake model: <last user message text>".
    pub reply: Option<String>,
    /// Sleep between streamed SSE events (default 10 ms).
    pub chunk_delay: Duration,
    /// Model id listed by `/v1/models` and used when the request has no `model`.
    pub model: String,
}

impl Default for FakeLlmOptions {
    fn default() -> Self {
        Self {
            api_key: "sk-fake-operator-key".to_string(),
            reply: None,
            chunk_delay: Duration::from_millis(10),
            model: "fake-model".to_string(),
        }
    }
}

/// Injected failure, consumed by the next authenticated generation request
/// (`/v1/chat/completions` or `/v1/messages`; `/v1/models` never consumes one).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FailMode {
    /// Answer with this HTTP status and a provider-shaped JSON error (429 adds `retry-after: 1`).
    Status(u16),
    /// Accept the request and never answer (until the fake shuts down).
    Hang,
    /// Send the headers and two chunks, then drop the connection without finishing the body.
    DropMidStream,
}

/// A tool call the fake model makes instead of answering (OpenAI `tool_calls`).
#[derive(Clone, Debug)]
pub struct ToolCall {
    /// The call id (letters and digits: some providers' ids are checked).
    pub id: String,
    pub name: String,
    pub arguments: Value,
}

/// One request as the fake saw it.
#[derive(Clone, Debug)]
pub struct RecordedRequest {
    pub method: String,
    pub path: String,
    /// Header names are lowercase.
    pub headers: Vec<(String, String)>,
    /// Parsed JSON body, or `Value::Null` if empty / not JSON.
    pub body: Value,
}

impl RecordedRequest {
    /// First value of a header (name matched case-insensitively).
    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers.iter().find(|(k, _)| *k == name).map(|(_, v)| v.as_str())
    }
}

struct Shared {
    api_key: String,
    model: String,
    chunk_delay: Duration,
    reply: Mutex<Option<String>>,
    fails: Mutex<VecDeque<FailMode>>,
    tool_calls: Mutex<VecDeque<ToolCall>>,
    requests: Mutex<Vec<RecordedRequest>>,
    shutdown: watch::Sender<bool>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// A running fake LLM. Stops when dropped (or on [`FakeLlm::shutdown`]).
pub struct FakeLlm {
    addr: SocketAddr,
    shared: Arc<Shared>,
    server: JoinHandle<()>,
}

impl FakeLlm {
    /// Binds 127.0.0.1:0 and starts serving. Panics only if the loopback bind fails.
    pub async fn spawn(opts: FakeLlmOptions) -> FakeLlm {
        let (shutdown, _) = watch::channel(false);
        let shared = Arc::new(Shared {
            api_key: opts.api_key,
            model: opts.model,
            chunk_delay: opts.chunk_delay,
            reply: Mutex::new(opts.reply),
            fails: Mutex::new(VecDeque::new()),
            tool_calls: Mutex::new(VecDeque::new()),
            requests: Mutex::new(Vec::new()),
            shutdown,
        });
        let app = Router::new()
            .route("/v1/models", get(models))
            .route("/v1/chat/completions", post(chat_completions))
            .route("/v1/messages", post(anthropic_messages))
            .fallback(not_found)
            .layer(DefaultBodyLimit::max(64 * 1024 * 1024))
            .with_state(shared.clone());
        let (addr, server) = super::serve_on_loopback(app, "fake llm").await;
        FakeLlm { addr, shared, server }
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT` (no trailing slash, no `/v1`).
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Queues a failure for the next generation request (FIFO, one per request).
    pub fn fail_next(&self, mode: FailMode) {
        lock(&self.shared.fails).push_back(mode);
    }

    /// Queues tool calls: each OpenAI request that offers tools gets the next one as its answer
    /// (a model that obeys a prompt injection); once they are used up, it answers in text.
    pub fn call_tools(&self, calls: impl IntoIterator<Item = ToolCall>) {
        lock(&self.shared.tool_calls).extend(calls);
    }

    /// Every tool result the agent sent back, by tool call id, in arrival order (repeats removed).
    pub fn tool_results(&self) -> Vec<(String, String)> {
        let mut seen = Vec::<(String, String)>::new();
        for request in lock(&self.shared.requests).iter() {
            for message in request.body["messages"].as_array().into_iter().flatten() {
                if message["role"] != "tool" {
                    continue;
                }
                let id = message["tool_call_id"].as_str().unwrap_or_default().to_string();
                if !seen.iter().any(|(known, _)| *known == id) {
                    seen.push((id, content_text(&message["content"])));
                }
            }
        }
        seen
    }

    /// Changes the reply text of subsequent requests (`None` = derived from the user message).
    pub fn set_reply(&self, reply: Option<String>) {
        *lock(&self.shared.reply) = reply;
    }

    /// All requests received so far, in arrival order (including rejected ones).
    pub fn requests(&self) -> Vec<RecordedRequest> {
        lock(&self.shared.requests).clone()
    }

    /// Stops accepting and releases hanging requests. Idempotent; also called on Drop.
    pub fn shutdown(&self) {
        let _ = self.shared.shutdown.send(true);
        self.server.abort();
    }
}

impl Drop for FakeLlm {
    fn drop(&mut self) {
        self.shutdown();
    }
}

// ---------------------------------------------------------------------------------------------
// helpers
// ---------------------------------------------------------------------------------------------

fn now_secs() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

fn record(shared: &Shared, method: &Method, uri: &Uri, headers: &HeaderMap, body: &Bytes) -> Value {
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

fn json_response(status: StatusCode, extra: &[(&'static str, String)], body: &Value) -> Response {
    let mut b = Response::builder().status(status).header(header::CONTENT_TYPE, "application/json");
    for (k, v) in extra {
        b = b.header(*k, v.as_str());
    }
    b.body(Body::from(body.to_string())).unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response())
}

/// Text of a message `content`: a string, or an array of `{type:"text", text}` parts.
fn content_text(content: &Value) -> String {
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

fn word_count(s: &str) -> u64 {
    s.split_whitespace().count() as u64
}

/// Last user message text, skipping OpenClaw's internal-context message.
fn last_user_text(messages: &[Value]) -> String {
    messages
        .iter()
        .rev()
        .filter(|m| m.get("role").and_then(Value::as_str) == Some("user"))
        .map(|m| content_text(m.get("content").unwrap_or(&Value::Null)))
        .find(|t| !t.contains(OPENCLAW_INTERNAL_CONTEXT_MARKER))
        .unwrap_or_default()
}

fn prompt_tokens(messages: &[Value], system: Option<&Value>) -> u64 {
    let sys = system.map(|s| word_count(&content_text(s))).unwrap_or(0);
    sys + messages.iter().map(|m| word_count(&content_text(m.get("content").unwrap_or(&Value::Null)))).sum::<u64>()
}

fn reply_text(shared: &Shared, messages: &[Value]) -> String {
    match lock(&shared.reply).clone() {
        Some(r) => r,
        None => format!("Hello from the fake model: {}", last_user_text(messages).trim()),
    }
}

/// A body that yields `frames` with `delay` between them; if `drop_after` is Some(n), the
/// connection is aborted after n frames (hyper closes it without finishing the body).
fn streaming_response(content_type: &str, frames: Vec<Bytes>, delay: Duration, drop_after: Option<usize>) -> Response {
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
fn split3(body: String) -> Vec<Bytes> {
    let b = Bytes::from(body);
    let third = b.len() / 3;
    vec![b.slice(..third), b.slice(third..2 * third), b.slice(2 * third..)]
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Flavor {
    OpenAi,
    Anthropic,
}

fn provider_error(flavor: Flavor, status: u16, message: &str) -> Response {
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

fn default_message(status: u16) -> &'static str {
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
async fn apply_failure(shared: &Shared, flavor: Flavor) -> (Option<Response>, bool) {
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

// ---------------------------------------------------------------------------------------------
// handlers
// ---------------------------------------------------------------------------------------------

async fn not_found(uri: Uri) -> Response {
    json_response(
        StatusCode::NOT_FOUND,
        &[],
        &json!({"error": {"message": format!("Unknown request URL: {}", uri.path()), "type": "invalid_request_error",
                          "param": null, "code": "unknown_url"}}),
    )
}

async fn models(State(shared): State<Arc<Shared>>, method: Method, uri: Uri, headers: HeaderMap) -> Response {
    record(&shared, &method, &uri, &headers, &Bytes::new());
    json_response(
        StatusCode::OK,
        &[],
        &json!({"object": "list", "data": [{"id": shared.model, "object": "model", "created": 0, "owned_by": "fake"}]}),
    )
}

async fn chat_completions(
    State(shared): State<Arc<Shared>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let req = record(&shared, &method, &uri, &headers, &body);
    let expected = format!("Bearer {}", shared.api_key);
    let auth_ok = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()) == Some(expected.as_str());
    if !auth_ok {
        let msg =
            "Incorrect API key provided. You can find your API key at https://platform.openai.com/account/api-keys.";
        return provider_error(Flavor::OpenAi, 401, msg);
    }
    let Some(messages) = req.get("messages").and_then(Value::as_array) else {
        return provider_error(Flavor::OpenAi, 400, "'messages' is a required property");
    };
    let (resp, drop_mid) = apply_failure(&shared, Flavor::OpenAi).await;
    if let Some(r) = resp {
        return r;
    }
    let model = req.get("model").and_then(Value::as_str).unwrap_or(&shared.model).to_string();
    let offers_tools = req.get("tools").and_then(Value::as_array).is_some_and(|t| !t.is_empty());
    if offers_tools && let Some(call) = lock(&shared.tool_calls).pop_front() {
        return tool_call_stream(&shared, &model, messages, &call);
    }
    let text = reply_text(&shared, messages);
    let prompt = prompt_tokens(messages, None);
    let completion = word_count(&text);
    let usage = json!({"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion});
    let id = format!("chatcmpl-{}", uuid::Uuid::new_v4().simple());
    let created = now_secs();
    let stream = req.get("stream").and_then(Value::as_bool).unwrap_or(false);
    let drop_after = drop_mid.then_some(2);

    if !stream {
        let body = json!({
            "id": id, "object": "chat.completion", "created": created, "model": model,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": text, "refusal": null},
                         "logprobs": null, "finish_reason": "stop"}],
            "usage": usage,
        });
        if drop_mid {
            return streaming_response("application/json", split3(body.to_string()), shared.chunk_delay, drop_after);
        }
        return json_response(StatusCode::OK, &[], &body);
    }

    let include_usage = req.pointer("/stream_options/include_usage").and_then(Value::as_bool).unwrap_or(false);
    let chunk = |delta: Value, finish: Value| {
        let mut c = json!({"id": id, "object": "chat.completion.chunk", "created": created, "model": model,
                           "choices": [{"index": 0, "delta": delta, "logprobs": null, "finish_reason": finish}]});
        if include_usage {
            c["usage"] = Value::Null;
        }
        format!("data: {c}\n\n")
    };
    let mut frames = vec![chunk(json!({"role": "assistant", "content": ""}), Value::Null)];
    for w in super::split_words(&text) {
        frames.push(chunk(json!({"content": w}), Value::Null));
    }
    frames.push(chunk(json!({}), json!("stop")));
    if include_usage {
        let u = json!({"id": id, "object": "chat.completion.chunk", "created": created, "model": model,
                       "choices": [], "usage": usage});
        frames.push(format!("data: {u}\n\n"));
    }
    frames.push("data: [DONE]\n\n".to_string());
    streaming_response(
        "text/event-stream",
        frames.into_iter().map(Bytes::from).collect(),
        shared.chunk_delay,
        drop_after,
    )
}

/// A streamed answer that is one tool call, as OpenAI sends it (name first, then arguments).
fn tool_call_stream(shared: &Shared, model: &str, messages: &[Value], call: &ToolCall) -> Response {
    let id = format!("chatcmpl-{}", uuid::Uuid::new_v4().simple());
    let call_id = &call.id;
    let created = now_secs();
    let chunk = |delta: Value, finish: Value| {
        let c = json!({"id": id, "object": "chat.completion.chunk", "created": created, "model": model,
                       "choices": [{"index": 0, "delta": delta, "logprobs": null, "finish_reason": finish}]});
        Bytes::from(format!("data: {c}\n\n"))
    };
    let prompt = prompt_tokens(messages, None);
    let usage = json!({"id": id, "object": "chat.completion.chunk", "created": created, "model": model, "choices": [],
                       "usage": {"prompt_tokens": prompt, "completion_tokens": 10, "total_tokens": prompt + 10}});
    let frames = vec![
        chunk(
            json!({"role": "assistant", "content": null, "tool_calls": [{"index": 0, "id": call_id, "type": "function",
                   "function": {"name": call.name, "arguments": ""}}]}),
            Value::Null,
        ),
        chunk(
            json!({"tool_calls": [{"index": 0, "function": {"arguments": call.arguments.to_string()}}]}),
            Value::Null,
        ),
        chunk(json!({}), json!("tool_calls")),
        Bytes::from(format!("data: {usage}\n\n")),
        Bytes::from_static(b"data: [DONE]\n\n"),
    ];
    streaming_response("text/event-stream", frames, shared.chunk_delay, None)
}

async fn anthropic_messages(
    State(shared): State<Arc<Shared>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let req = record(&shared, &method, &uri, &headers, &body);
    let key_ok = headers.get("x-api-key").and_then(|v| v.to_str().ok()) == Some(shared.api_key.as_str());
    if !key_ok {
        return provider_error(Flavor::Anthropic, 401, "invalid x-api-key");
    }
    if !headers.contains_key("anthropic-version") {
        return provider_error(Flavor::Anthropic, 400, "anthropic-version: header is required");
    }
    let Some(messages) = req.get("messages").and_then(Value::as_array) else {
        return provider_error(Flavor::Anthropic, 400, "messages: Field required");
    };
    let (resp, drop_mid) = apply_failure(&shared, Flavor::Anthropic).await;
    if let Some(r) = resp {
        return r;
    }
    let model = req.get("model").and_then(Value::as_str).unwrap_or(&shared.model).to_string();
    let text = reply_text(&shared, messages);
    let input_tokens = prompt_tokens(messages, req.get("system"));
    let output_tokens = word_count(&text);
    let id = format!("msg_{}", uuid::Uuid::new_v4().simple());
    let stream = req.get("stream").and_then(Value::as_bool).unwrap_or(false);
    let drop_after = drop_mid.then_some(2);

    if !stream {
        let body = json!({
            "id": id, "type": "message", "role": "assistant", "model": model,
            "content": [{"type": "text", "text": text}],
            "stop_reason": "end_turn", "stop_sequence": null,
            "usage": {"input_tokens": input_tokens, "output_tokens": output_tokens},
        });
        if drop_mid {
            return streaming_response("application/json", split3(body.to_string()), shared.chunk_delay, drop_after);
        }
        return json_response(StatusCode::OK, &[], &body);
    }

    let ev = |name: &str, data: Value| format!("event: {name}\ndata: {data}\n\n");
    let mut frames = vec![
        ev(
            "message_start",
            json!({"type": "message_start", "message": {
                "id": id, "type": "message", "role": "assistant", "content": [], "model": model,
                "stop_reason": null, "stop_sequence": null,
                "usage": {"input_tokens": input_tokens, "output_tokens": 1}}}),
        ),
        ev(
            "content_block_start",
            json!({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}),
        ),
        ev("ping", json!({"type": "ping"})),
    ];
    for w in super::split_words(&text) {
        frames.push(ev(
            "content_block_delta",
            json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": w}}),
        ));
    }
    frames.push(ev("content_block_stop", json!({"type": "content_block_stop", "index": 0})));
    frames.push(ev(
        "message_delta",
        json!({"type": "message_delta", "delta": {"stop_reason": "end_turn", "stop_sequence": null},
               "usage": {"output_tokens": output_tokens}}),
    ));
    frames.push(ev("message_stop", json!({"type": "message_stop"})));
    streaming_response(
        "text/event-stream",
        frames.into_iter().map(Bytes::from).collect(),
        shared.chunk_delay,
        drop_after,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_text_skips_internal_context() {
        let msgs = vec![
            json!({"role": "system", "content": "sys"}),
            json!({"role": "user", "content": [{"type": "text", "text": "hi there"}]}),
            json!({"role": "user", "content": format!("{OPENCLAW_INTERNAL_CONTEXT_MARKER} stuff")}),
        ];
        assert_eq!(last_user_text(&msgs), "hi there");
        assert_eq!(prompt_tokens(&msgs, None), 1 + 2 + 2);
    }
}
