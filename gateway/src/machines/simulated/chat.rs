//! `chat.send` (a run streaming its reply as `agent` and `chat` events), `chat.abort` and
//! `chat.history`.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use serde_json::{Value, json};
use tokio::task::AbortHandle;

use super::handshake::str_field;
use super::requests::{ConnCtx, invalid_request, required_str};
use super::sessions::{Session, StoredMessage, canonical_session_key};
use super::{Reply, Shared, lock, now_ms};

/// A streaming reply: cancelled through `abort`, its partial `text` kept if it is.
pub(super) struct RunEntry {
    pub(super) session_key: String,
    pub(super) abort: AbortHandle,
    seq: Arc<AtomicU64>,
    text: Arc<Mutex<String>>,
}

pub(super) fn text_message(role: &str, text: &str, timestamp: u64) -> Value {
    json!({"role": role, "content": [{"type": "text", "text": text}], "timestamp": timestamp})
}

pub(super) fn chat_send(ctx: &ConnCtx, id: &Value, params: &Value) {
    let Some(session_key) = required_str(ctx, id, "chat.send", params, "sessionKey") else {
        return;
    };
    let Some(idem) = required_str(ctx, id, "chat.send", params, "idempotencyKey") else {
        return;
    };
    let Some(message) = str_field(params, "message") else {
        ctx.res_err(id, invalid_request("invalid chat.send params: must have required property 'message'"));
        return;
    };
    let shared = &ctx.shared;
    let canonical = canonical_session_key(session_key);
    let run_id = idem.to_string();

    let mut runs = lock(&shared.runs);
    if runs.contains_key(&run_id) {
        ctx.res_ok(id, json!({"runId": run_id, "status": "in_flight"}));
        return;
    }
    {
        let mut sessions = lock(&shared.sessions);
        let s = sessions.entry(canonical.clone()).or_insert_with(Session::new);
        // Like the real gateway: a retried send (same idempotency key) is answered, not run again.
        if s.messages.iter().any(|m| m.idempotency_key.as_deref() == Some(run_id.as_str())) {
            ctx.res_ok(id, json!({"runId": run_id, "status": "ok"}));
            return;
        }
        let now = now_ms();
        s.messages.push(StoredMessage::text("user", message.to_string(), now, Some(run_id.clone())));
        s.updated_at = now;
    }
    ctx.res_ok(id, json!({"runId": run_id, "status": "started"}));

    let outcome = match lock(&shared.reply).clone() {
        // Chat commands, so a person (or a test) can see each kind of reply without a model.
        _ if message.starts_with("/say ") => Ok(message["/say ".len()..].to_string()),
        _ if message.starts_with("/error ") => Err(message["/error ".len()..].to_string()),
        Reply::Text(t) => Ok(t),
        Reply::Echo => Ok(message.to_string()),
        Reply::Error(e) => Err(e),
    };
    let seq = Arc::new(AtomicU64::new(0));
    let text = Arc::new(Mutex::new(String::new()));
    // The task cannot observe the run map before we insert: we hold the lock across spawn.
    let tool = ToolCall::requested(message);
    let handle = tokio::spawn(run_chat(
        shared.clone(),
        run_id.clone(),
        canonical.clone(),
        outcome,
        tool,
        seq.clone(),
        text.clone(),
    ));
    runs.insert(run_id, RunEntry { session_key: canonical, abort: handle.abort_handle(), seq, text });
}

fn next_seq(seq: &AtomicU64) -> u64 {
    seq.fetch_add(1, Ordering::SeqCst) + 1
}

fn agent_event(run_id: &str, session_key: &str, seq: u64, data: Value) -> Value {
    json!({"runId": run_id, "stream": "lifecycle", "data": data, "sessionKey": session_key,
           "agentId": "main", "seq": seq, "ts": now_ms(), "isHeartbeat": false})
}

/// A message starting `/tool ` makes the simulated agent run its `exec` tool on the rest before
/// it replies (`/tool fail …` fails), so tool activity can be tried without a model. The events
/// have the real gateway's shape (`agent` events, stream `tool`, phases `start` and `result`).
struct ToolCall {
    command: String,
    fails: bool,
}

impl ToolCall {
    const MAX_COMMAND: usize = 2000;

    fn requested(message: &str) -> Option<Self> {
        let command = message.strip_prefix("/tool ")?.trim();
        if command.is_empty() {
            return None;
        }
        let command: String = command.chars().take(Self::MAX_COMMAND).collect();
        Some(Self { fails: command.starts_with("fail"), command })
    }

    fn start(&self, run_id: &str, session_key: &str, seq: u64) -> Value {
        tool_event(
            run_id,
            session_key,
            seq,
            json!({"phase": "start", "name": "exec", "toolCallId": self.id(run_id),
                                                     "args": {"command": self.command}}),
        )
    }

    fn result(&self, run_id: &str, session_key: &str, seq: u64) -> Value {
        let text = self.output();
        tool_event(
            run_id,
            session_key,
            seq,
            json!({"phase": "result", "name": "exec", "toolCallId": self.id(run_id), "meta": self.command,
                   "isError": self.fails, "result": {"content": [{"type": "text", "text": text}]}}),
        )
    }

    fn output(&self) -> String {
        if self.fails {
            format!("{}: command failed with exit code 1", self.command)
        } else {
            format!("$ {}\nsimulated output of `{}`", self.command, self.command)
        }
    }

    /// Writes the call and its result into the transcript, in OpenClaw's shape (research §4).
    fn record(&self, shared: &Shared, run_id: &str, session_key: &str) {
        let now = now_ms();
        let meta = json!({ "runId": run_id });
        let call = json!({"role": "assistant", "timestamp": now, "stopReason": "toolUse", "__openclaw": meta,
            "content": [{"type": "toolCall", "id": self.id(run_id), "name": "exec", "arguments": {"command": self.command}}]});
        let result = json!({"role": "toolResult", "timestamp": now, "toolCallId": self.id(run_id), "toolName": "exec",
            "isError": self.fails, "__openclaw": meta, "content": [{"type": "text", "text": self.output()}]});
        let mut sessions = lock(&shared.sessions);
        let s = sessions.entry(session_key.to_string()).or_insert_with(Session::new);
        s.messages.push(StoredMessage::raw("assistant", call, now));
        s.messages.push(StoredMessage::raw("toolResult", result, now));
    }

    fn id(&self, run_id: &str) -> String {
        format!("call_{}", run_id.chars().filter(char::is_ascii_alphanumeric).take(8).collect::<String>())
    }
}

fn tool_event(run_id: &str, session_key: &str, seq: u64, data: Value) -> Value {
    json!({"runId": run_id, "stream": "tool", "data": data, "sessionKey": session_key,
           "agentId": "main", "seq": seq, "ts": now_ms()})
}

/// Sends a tool event only if the run is still registered (not aborted).
fn emit_tool_if_running(shared: &Shared, run_id: &str, event: impl FnOnce() -> Value) -> bool {
    let runs = lock(&shared.runs);
    if !runs.contains_key(run_id) {
        return false;
    }
    shared.broadcast_tool(event());
    true
}

fn chat_event(run_id: &str, session_key: &str, seq: u64, fields: Value) -> Value {
    let mut p = json!({"runId": run_id, "sessionKey": session_key, "agentId": "main", "seq": seq});
    if let (Some(obj), Value::Object(extra)) = (p.as_object_mut(), fields) {
        obj.extend(extra);
    }
    p
}

/// Broadcasts `events` only if the run is still registered (not aborted).
fn emit_if_running(shared: &Shared, run_id: &str, events: impl FnOnce() -> Vec<(&'static str, Value)>) -> bool {
    let runs = lock(&shared.runs);
    if !runs.contains_key(run_id) {
        return false;
    }
    for (name, payload) in events() {
        shared.broadcast(name, payload, true);
    }
    true
}

async fn run_chat(
    shared: Arc<Shared>,
    run_id: String,
    session_key: String,
    outcome: Result<String, String>,
    tool: Option<ToolCall>,
    seq: Arc<AtomicU64>,
    acc: Arc<Mutex<String>>,
) {
    let delay = shared.delta_delay;
    let started = now_ms();
    if !emit_if_running(&shared, &run_id, || {
        vec![(
            "agent",
            agent_event(&run_id, &session_key, next_seq(&seq), json!({"phase": "start", "startedAt": started})),
        )]
    }) {
        return;
    }
    if let Some(tool) = &tool {
        tokio::time::sleep(delay).await;
        if !emit_tool_if_running(&shared, &run_id, || tool.start(&run_id, &session_key, next_seq(&seq))) {
            return;
        }
        // Long enough for the page to show the call running.
        tokio::time::sleep(delay * 25).await;
        if !emit_tool_if_running(&shared, &run_id, || tool.result(&run_id, &session_key, next_seq(&seq))) {
            return;
        }
        tool.record(&shared, &run_id, &session_key);
    }
    match outcome {
        Err(message) => {
            tokio::time::sleep(delay).await;
            let mut runs = lock(&shared.runs);
            if runs.remove(&run_id).is_none() {
                return;
            }
            shared.broadcast(
                "chat",
                chat_event(
                    &run_id,
                    &session_key,
                    next_seq(&seq),
                    json!({"state": "error", "errorMessage": message, "errorKind": "unknown"}),
                ),
                true,
            );
            shared.broadcast(
                "agent",
                agent_event(&run_id, &session_key, next_seq(&seq), json!({"phase": "error", "error": message})),
                true,
            );
        }
        Ok(text) => {
            for chunk in split_words(&text) {
                tokio::time::sleep(delay).await;
                let cumulative = {
                    let mut a = lock(&acc);
                    a.push_str(&chunk);
                    a.clone()
                };
                let ok = emit_if_running(&shared, &run_id, || {
                    let fields = json!({"state": "delta", "deltaText": chunk,
                                        "message": text_message("assistant", &cumulative, now_ms())});
                    vec![("chat", chat_event(&run_id, &session_key, next_seq(&seq), fields))]
                });
                if !ok {
                    return;
                }
            }
            if text.is_empty() {
                tokio::time::sleep(delay).await;
            }
            let mut runs = lock(&shared.runs);
            if runs.remove(&run_id).is_none() {
                return;
            }
            let now = now_ms();
            {
                let mut sessions = lock(&shared.sessions);
                let s = sessions.entry(session_key.clone()).or_insert_with(Session::new);
                s.messages.push(StoredMessage::reply(&text, now, &run_id));
                s.updated_at = now;
            }
            shared.broadcast(
                "agent",
                agent_event(
                    &run_id,
                    &session_key,
                    next_seq(&seq),
                    json!({"phase": "end", "stopReason": "stop", "endedAt": now}),
                ),
                true,
            );
            shared.broadcast(
                "chat",
                chat_event(
                    &run_id,
                    &session_key,
                    next_seq(&seq),
                    json!({"state": "final", "stopReason": "stop",
                                  "message": text_message("assistant", &text, now)}),
                ),
                true,
            );
        }
    }
}

/// Removes and cancels matching runs; `before_events` runs (under the lock) before the
/// aborted events are broadcast, so a `res` queued there precedes them.
pub(super) fn abort_runs(
    shared: &Shared,
    session_key: &str,
    run_id: Option<&str>,
    before_events: impl FnOnce(&[String]),
) {
    let mut runs = lock(&shared.runs);
    let ids: Vec<String> = runs
        .iter()
        .filter(|(id, r)| r.session_key == session_key && run_id.is_none_or(|want| want == id.as_str()))
        .map(|(id, _)| id.clone())
        .collect();
    let mut removed = Vec::new();
    for id in &ids {
        if let Some(r) = runs.remove(id) {
            r.abort.abort();
            removed.push((id.clone(), r));
        }
    }
    before_events(&ids);
    for (id, r) in removed {
        let partial = lock(&r.text).clone();
        if !partial.is_empty() {
            let mut sessions = lock(&shared.sessions);
            if let Some(s) = sessions.get_mut(&r.session_key) {
                s.messages.push(StoredMessage::reply(&partial, now_ms(), &id));
                s.updated_at = now_ms();
            }
        }
        shared.broadcast(
            "chat",
            chat_event(&id, &r.session_key, next_seq(&r.seq), json!({"state": "aborted", "stopReason": "rpc"})),
            true,
        );
        // Like the real gateway, the agent lifecycle error arrives after the chat "aborted" event.
        shared.broadcast(
            "agent",
            agent_event(
                &id,
                &r.session_key,
                next_seq(&r.seq),
                json!({"phase": "error", "error": "This operation was aborted", "aborted": true}),
            ),
            true,
        );
    }
}

pub(super) fn chat_abort(ctx: &ConnCtx, id: &Value, params: &Value) {
    let Some(session_key) = required_str(ctx, id, "chat.abort", params, "sessionKey") else {
        return;
    };
    let canonical = canonical_session_key(session_key);
    let run_id = str_field(params, "runId");
    abort_runs(&ctx.shared, &canonical, run_id, |ids| {
        ctx.res_ok(id, json!({"ok": true, "aborted": !ids.is_empty(), "runIds": ids}));
    });
}

pub(super) fn chat_history(ctx: &ConnCtx, id: &Value, params: &Value) {
    let Some(session_key) = required_str(ctx, id, "chat.history", params, "sessionKey") else {
        return;
    };
    let limit = match params.get("limit") {
        None | Some(Value::Null) => 200,
        Some(v) => match v.as_u64() {
            Some(n) if (1..=1000).contains(&n) => n as usize,
            _ => {
                ctx.res_err(id, invalid_request("invalid chat.history params: limit must be an integer 1..1000"));
                return;
            }
        },
    };
    let canonical = canonical_session_key(session_key);
    let sessions = lock(&ctx.shared.sessions);
    let (messages, total, session_id) = match sessions.get(&canonical) {
        Some(s) => {
            let start = s.messages.len().saturating_sub(limit);
            let msgs: Vec<Value> = s.messages[start..]
                .iter()
                .map(|m| {
                    if let Some(raw) = &m.raw {
                        return raw.clone();
                    }
                    let mut v = text_message(m.role, &m.text, m.timestamp);
                    if let Some(k) = &m.idempotency_key {
                        v["idempotencyKey"] = json!(k);
                    }
                    v
                })
                .collect();
            (msgs, s.messages.len(), Some(s.session_id.clone()))
        }
        None => (Vec::new(), 0, None),
    };
    let has_more = total > messages.len();
    ctx.res_ok(
        id,
        json!({"sessionKey": session_key, "sessionId": session_id, "messages": messages, "hasMore": has_more,
               "totalMessages": total, "sessionInfo": {"key": canonical}}),
    );
}

/// Splits a reply into streamed chunks: each word with the whitespace before it, so the chunks
/// concatenate back to the exact text.
pub fn split_words(text: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let mut cur = String::new();
    let mut prev_ws = false;
    for c in text.chars() {
        if !c.is_whitespace() && prev_ws && !cur.is_empty() {
            out.push(std::mem::take(&mut cur));
        }
        prev_ws = c.is_whitespace();
        cur.push(c);
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::{ToolCall, split_words};

    #[test]
    fn only_a_tool_message_calls_the_tool() {
        assert!(ToolCall::requested("hello").is_none());
        assert!(ToolCall::requested("/tool ").is_none());
        let call = ToolCall::requested("/tool ls -la").unwrap();
        assert_eq!((call.command.as_str(), call.fails), ("ls -la", false));
        assert!(ToolCall::requested("/tool fail now").unwrap().fails);
        let long = format!("/tool {}", "x".repeat(5000));
        assert_eq!(ToolCall::requested(&long).unwrap().command.len(), ToolCall::MAX_COMMAND);
    }

    #[test]
    fn words_keep_whitespace() {
        assert_eq!(split_words("Hello  big world"), vec!["Hello  ", "big ", "world"]);
        assert_eq!(split_words(""), Vec::<String>::new());
        assert_eq!(split_words("a b").concat(), "a b");
    }
}
