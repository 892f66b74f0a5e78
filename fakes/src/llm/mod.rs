//! Stateful in-process fake LLM provider: OpenAI-compatible (`/v1/chat/completions`,
//! `/v1/models`) and Anthropic-compatible (`/v1/messages`), streaming and non-streaming,
//! with a failure-injection queue and a request log. It keeps the set of API keys it accepts
//! (the operator's, plus any a test adds or revokes: users' own keys) and refuses any other with
//! the provider's real 401.

use std::collections::{HashSet, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};
use serde_json::Value;
use tokio::sync::watch;
use tokio::task::JoinHandle;

mod anthropic;
mod openai;
mod wire;

use anthropic::anthropic_messages;
use openai::{chat_completions, models, not_found};
use wire::content_text;

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
    /// The API key the call presented: `Authorization: Bearer <key>` or `x-api-key: <key>`.
    pub fn api_key(&self) -> Option<&str> {
        self.header("authorization").and_then(|v| v.strip_prefix("Bearer ")).or_else(|| self.header("x-api-key"))
    }

    /// First value of a header (name matched case-insensitively).
    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers.iter().find(|(k, _)| *k == name).map(|(_, v)| v.as_str())
    }
}

pub(super) struct Shared {
    api_keys: Mutex<HashSet<String>>,
    /// Listed by `/v1/models` after `model`.
    more_models: Mutex<Vec<String>>,
    /// `/v1/models` accepts and never answers (a provider that hangs while a key is checked).
    hang_model_lists: Mutex<bool>,
    model: String,
    chunk_delay: Duration,
    reply: Mutex<Option<String>>,
    fails: Mutex<VecDeque<FailMode>>,
    tool_calls: Mutex<VecDeque<ToolCall>>,
    requests: Mutex<Vec<RecordedRequest>>,
    shutdown: watch::Sender<bool>,
}

impl Shared {
    pub(super) fn accepts(&self, key: Option<&str>) -> bool {
        key.is_some_and(|k| lock(&self.api_keys).contains(k))
    }

    pub(super) fn listed_models(&self) -> Vec<String> {
        let mut models = vec![self.model.clone()];
        models.extend(lock(&self.more_models).iter().cloned());
        models
    }
}

pub(super) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
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
            api_keys: Mutex::new(HashSet::from([opts.api_key])),
            more_models: Mutex::new(Vec::new()),
            hang_model_lists: Mutex::new(false),
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
        let (addr, server) = crate::serve_on_loopback(app, "fake llm").await;
        FakeLlm { addr, shared, server }
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT` (no trailing slash, no `/v1`).
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Accepts `key` as well, from now on (a user's own key).
    pub fn accept_key(&self, key: &str) {
        lock(&self.shared.api_keys).insert(key.to_owned());
    }

    /// Refuses `key` from now on, with the provider's 401 (a key its owner revoked).
    pub fn revoke_key(&self, key: &str) {
        lock(&self.shared.api_keys).remove(key);
    }

    /// Lists these models too in `/v1/models`.
    pub fn offer_models(&self, models: &[&str]) {
        lock(&self.shared.more_models).extend(models.iter().map(|m| m.to_string()));
    }

    /// Makes `/v1/models` hang (until the fake shuts down), or answer again.
    pub fn hang_model_lists(&self, hang: bool) {
        *lock(&self.shared.hang_model_lists) = hang;
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

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::OPENCLAW_INTERNAL_CONTEXT_MARKER;
    use super::wire::{last_user_text, prompt_tokens};

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
