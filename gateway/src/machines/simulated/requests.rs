//! Requests after `hello-ok`: the scope each method needs, and the dispatch to chats and sessions.

use std::sync::Arc;

use serde_json::{Value, json};
use tokio::sync::mpsc;

use super::connection::scopes_allow;
use super::handshake::{SCOPE_READ, SCOPE_WRITE, str_field};
use super::{Out, Shared, channels, chat, now_ms, sessions};

/// A connection as its request handlers see it.
pub(super) struct ConnCtx {
    pub(super) shared: Arc<Shared>,
    pub(super) tx: mpsc::UnboundedSender<Out>,
    pub(super) scopes: Vec<String>,
    /// The top-level `seq` of the last event written.
    pub(super) seq: u64,
}

impl ConnCtx {
    pub(super) fn has_scope(&self, scope: &str) -> bool {
        scopes_allow(&self.scopes, scope)
    }

    pub(super) fn res_ok(&self, id: &Value, payload: Value) {
        let _ = self.tx.send(Out::Res(json!({"type": "res", "id": id, "ok": true, "payload": payload})));
    }

    pub(super) fn res_err(&self, id: &Value, error: Value) {
        let _ = self.tx.send(Out::Res(json!({"type": "res", "id": id, "ok": false, "error": error})));
    }
}

pub(super) fn invalid_request(message: impl Into<String>) -> Value {
    json!({"code": "INVALID_REQUEST", "message": message.into()})
}

fn missing_scope(scope: &str) -> Value {
    json!({"code": "FORBIDDEN", "message": format!("missing scope: {scope}"),
           "details": {"code": "MISSING_SCOPE", "missingScope": scope, "requiredScopes": [scope]}})
}

pub(super) fn handle_frame(ctx: &mut ConnCtx, text: &str) {
    let Ok(frame) = serde_json::from_str::<Value>(text) else {
        return;
    };
    let id = frame.get("id").cloned().unwrap_or(Value::Null);
    let method = str_field(&frame, "method");
    let (true, Some(method)) = (str_field(&frame, "type") == Some("req"), method) else {
        if !id.is_null() {
            ctx.res_err(&id, invalid_request("invalid request frame"));
        }
        return;
    };
    let params = frame.get("params").cloned().unwrap_or_else(|| json!({}));
    ctx.shared.hooks.request(method, &params);

    let required = match method {
        "chat.history" | "sessions.list" | "channels.status" => Some(SCOPE_READ),
        "chat.send" | "chat.abort" | "sessions.delete" | "sessions.reset" => Some(SCOPE_WRITE),
        _ => None,
    };
    if let Some(scope) = required
        && !ctx.has_scope(scope)
    {
        ctx.res_err(&id, missing_scope(scope));
        return;
    }
    match method {
        "health" => {
            ctx.res_ok(&id, json!({"ok": true, "ts": now_ms(), "defaultAgentId": "main", "heartbeatSeconds": 0}))
        }
        "chat.send" => chat::chat_send(ctx, &id, &params),
        "chat.history" => chat::chat_history(ctx, &id, &params),
        "chat.abort" => chat::chat_abort(ctx, &id, &params),
        "sessions.list" => sessions::sessions_list(ctx, &id),
        "channels.status" => channels::channels_status(ctx, &id),
        "sessions.delete" => sessions::sessions_delete_or_reset(ctx, &id, &params, true),
        "sessions.reset" => sessions::sessions_delete_or_reset(ctx, &id, &params, false),
        "connect" => ctx.res_err(&id, invalid_request("already connected")),
        other => ctx.res_err(&id, invalid_request(format!("unknown method: {other}"))),
    }
}

pub(super) fn required_str<'a>(
    ctx: &ConnCtx,
    id: &Value,
    method: &str,
    params: &'a Value,
    key: &str,
) -> Option<&'a str> {
    match str_field(params, key) {
        Some(s) if !s.is_empty() => Some(s),
        _ => {
            ctx.res_err(id, invalid_request(format!("invalid {method} params: must have required property '{key}'")));
            None
        }
    }
}
