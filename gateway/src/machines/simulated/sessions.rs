//! Each session's transcript, and `sessions.list` / `sessions.delete` / `sessions.reset`.

use serde_json::{Value, json};

use super::requests::{ConnCtx, required_str};
use super::{chat, lock, now_ms};

/// `"main"` -> `"agent:main:main"`, `"X"` -> `"agent:main:X"`, `"agent:…"` unchanged.
pub(super) fn canonical_session_key(key: &str) -> String {
    let key = key.trim();
    if key.starts_with("agent:") { key.to_string() } else { format!("agent:main:{key}") }
}

pub(super) struct StoredMessage {
    pub(super) role: &'static str,
    pub(super) text: String,
    pub(super) timestamp: u64,
    pub(super) idempotency_key: Option<String>,
    /// A transcript entry kept as OpenClaw records it (a tool call or its result), served as is.
    pub(super) raw: Option<Value>,
}

impl StoredMessage {
    pub(super) fn text(role: &'static str, text: String, timestamp: u64, idempotency_key: Option<String>) -> Self {
        Self { role, text, timestamp, idempotency_key, raw: None }
    }

    /// A reply's text, tagged with its run as OpenClaw tags every transcript entry.
    pub(super) fn reply(text: &str, timestamp: u64, run_id: &str) -> Self {
        let mut raw = chat::text_message("assistant", text, timestamp);
        raw["__openclaw"] = json!({ "runId": run_id });
        Self { role: "assistant", text: text.to_string(), timestamp, idempotency_key: None, raw: Some(raw) }
    }

    pub(super) fn raw(role: &'static str, raw: Value, timestamp: u64) -> Self {
        Self { role, text: String::new(), timestamp, idempotency_key: None, raw: Some(raw) }
    }
}

pub(super) struct Session {
    pub(super) session_id: String,
    pub(super) messages: Vec<StoredMessage>,
    pub(super) updated_at: u64,
}

impl Session {
    pub(super) fn new() -> Self {
        Self { session_id: uuid::Uuid::new_v4().to_string(), messages: Vec::new(), updated_at: now_ms() }
    }
}

pub(super) fn sessions_list(ctx: &ConnCtx, id: &Value) {
    let runs = lock(&ctx.shared.runs);
    let sessions = lock(&ctx.shared.sessions);
    let mut list: Vec<(u64, Value)> = sessions
        .iter()
        .map(|(key, s)| {
            let active: Vec<&String> = runs.iter().filter(|(_, r)| &r.session_key == key).map(|(id, _)| id).collect();
            (
                s.updated_at,
                json!({"key": key, "sessionId": s.session_id, "kind": "direct", "updatedAt": s.updated_at,
                       "hasActiveRun": !active.is_empty(), "activeRunIds": active,
                       "model": "fake-model", "modelProvider": "fake"}),
            )
        })
        .collect();
    list.sort_by_key(|entry| std::cmp::Reverse(entry.0));
    let sessions: Vec<Value> = list.into_iter().map(|(_, v)| v).collect();
    let count = sessions.len();
    ctx.res_ok(
        id,
        json!({"ts": now_ms(), "count": count, "totalCount": count, "hasMore": false, "sessions": sessions}),
    );
}

pub(super) fn sessions_delete_or_reset(ctx: &ConnCtx, id: &Value, params: &Value, delete: bool) {
    let method = if delete { "sessions.delete" } else { "sessions.reset" };
    let Some(key) = required_str(ctx, id, method, params, "key") else {
        return;
    };
    let canonical = canonical_session_key(key);
    chat::abort_runs(&ctx.shared, &canonical, None, |_| {});
    let mut sessions = lock(&ctx.shared.sessions);
    if delete {
        let deleted = sessions.remove(&canonical).is_some();
        ctx.res_ok(id, json!({"ok": true, "key": canonical, "deleted": deleted}));
    } else {
        let s = sessions.entry(canonical.clone()).or_insert_with(Session::new);
        *s = Session::new();
        ctx.res_ok(id, json!({"ok": true, "key": canonical, "sessionId": s.session_id}));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_keys() {
        assert_eq!(canonical_session_key("main"), "agent:main:main");
        assert_eq!(canonical_session_key("x"), "agent:main:x");
        assert_eq!(canonical_session_key("agent:ops:y"), "agent:ops:y");
    }
}
