//! One WebSocket connection: the upgrade checks, the challenge and `connect` phase, then the
//! authenticated loop (requests in, queued responses and events out, ticks), or the echo loop.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use axum::extract::State;
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade, rejection::WebSocketUpgradeRejection};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use tokio::sync::mpsc;

use super::handshake::{Challenge, MAX_PAYLOAD, PRE_AUTH_MAX_BYTES, SCOPE_READ, SCOPE_WRITE, handle_connect};
use super::requests::{self, ConnCtx};
use super::{ConnEntry, HANDSHAKE_TIMEOUT, Out, Shared, TICK_INTERVAL, lock, now_ms};

pub(super) async fn health_http() -> Response {
    axum::Json(json!({"ok": true, "status": "live"})).into_response()
}

pub(super) async fn ready_http() -> Response {
    axum::Json(json!({"ready": true, "failing": []})).into_response()
}

fn is_forwarding_header(name: &str) -> bool {
    name.starts_with("x-forwarded-") || name == "forwarded" || name == "x-real-ip"
}

pub(super) async fn ws_handler(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    ws: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Response {
    shared.hooks.upgrade(&headers);
    if headers.keys().any(|k| is_forwarding_header(k.as_str())) {
        let body = json!({"error": {
            "message": "Proxy client attribution is required.",
            "type": "proxy_attribution_required"}});
        return (StatusCode::FORBIDDEN, [(header::CONTENT_TYPE, "application/json")], body.to_string()).into_response();
    }
    let ws = match ws {
        Ok(ws) => ws,
        Err(_) => return (StatusCode::NOT_FOUND, "Not Found").into_response(),
    };
    let has_origin = headers.contains_key(header::ORIGIN);
    let index = shared.connections_total.fetch_add(1, Ordering::SeqCst);
    ws.max_message_size(MAX_PAYLOAD)
        .max_frame_size(MAX_PAYLOAD)
        .on_upgrade(move |socket| handle_socket(shared, socket, index, has_origin))
}

struct ConnGuard {
    shared: Arc<Shared>,
    id: u64,
}

impl Drop for ConnGuard {
    fn drop(&mut self) {
        lock(&self.shared.conns).remove(&self.id);
    }
}

pub(super) fn scopes_allow(scopes: &[String], scope: &str) -> bool {
    scopes.iter().any(|s| s == scope || s == "operator.admin" || (scope == SCOPE_READ && s == SCOPE_WRITE))
}

enum Step {
    Continue,
    Stop,
}

async fn send_text(socket: &mut WebSocket, v: &Value) -> bool {
    socket.send(Message::Text(v.to_string().into())).await.is_ok()
}

/// Sends a close frame and waits (bounded) for the peer's close reply.
async fn close_socket(socket: &mut WebSocket, code: u16, reason: &str) {
    // Close reasons are limited to 123 bytes.
    let mut reason = reason.to_string();
    while reason.len() > 123 {
        reason.pop();
    }
    let frame = CloseFrame { code, reason: reason.into() };
    if socket.send(Message::Close(Some(frame))).await.is_err() {
        return;
    }
    let _ = tokio::time::timeout(Duration::from_secs(2), async {
        while let Some(Ok(m)) = socket.recv().await {
            if matches!(m, Message::Close(_)) {
                break;
            }
        }
    })
    .await;
}

/// Writes one queued item. Returns Stop if the connection must end.
async fn write_out(socket: &mut WebSocket, ctx: &mut ConnCtx, out: Out) -> Step {
    match out {
        Out::Res(v) => {
            if send_text(socket, &v).await {
                Step::Continue
            } else {
                Step::Stop
            }
        }
        Out::Event(event, payload) => {
            ctx.seq += 1;
            let frame = json!({"type": "event", "event": event, "payload": payload, "seq": ctx.seq});
            if send_text(socket, &frame).await { Step::Continue } else { Step::Stop }
        }
        Out::Close(code, reason) => {
            close_socket(socket, code, &reason).await;
            Step::Stop
        }
        Out::Drop => Step::Stop,
    }
}

async fn handle_socket(shared: Arc<Shared>, mut socket: WebSocket, index: u64, has_origin: bool) {
    let conn_id = shared.next_conn_id.fetch_add(1, Ordering::SeqCst);
    let (tx, mut rx) = mpsc::unbounded_channel();
    lock(&shared.conns)
        .insert(conn_id, ConnEntry { tx: tx.clone(), authed: false, can_read: false, tool_events: false });
    let _guard = ConnGuard { shared: shared.clone(), id: conn_id };
    let mut ctx = ConnCtx { shared: shared.clone(), tx, scopes: Vec::new(), seq: 0 };

    let challenge = Challenge { nonce: uuid::Uuid::new_v4().to_string(), ts: now_ms() };
    let ch = json!({"type": "event", "event": "connect.challenge",
        "payload": {"nonce": challenge.nonce, "ts": challenge.ts, "capabilities": []}});
    if !send_text(&mut socket, &ch).await {
        return;
    }

    // ---- pre-auth phase ----
    let deadline = tokio::time::sleep(HANDSHAKE_TIMEOUT);
    tokio::pin!(deadline);
    loop {
        tokio::select! {
            _ = &mut deadline => {
                close_socket(&mut socket, 1008, "handshake timeout").await;
                return;
            }
            out = rx.recv() => {
                let Some(out) = out else { return };
                if let Step::Stop = write_out(&mut socket, &mut ctx, out).await { return; }
            }
            msg = socket.recv() => {
                let text = match msg {
                    Some(Ok(Message::Text(t))) => t.as_str().to_string(),
                    Some(Ok(Message::Binary(b))) => {
                        if b.len() > PRE_AUTH_MAX_BYTES {
                            close_socket(&mut socket, 1009, "payload too large").await;
                        } else {
                            close_socket(&mut socket, 1008, "invalid handshake").await;
                        }
                        return;
                    }
                    Some(Ok(Message::Ping(_))) | Some(Ok(Message::Pong(_))) => continue,
                    Some(Ok(Message::Close(_))) | Some(Err(_)) | None => return,
                };
                if text.len() > PRE_AUTH_MAX_BYTES {
                    close_socket(&mut socket, 1009, "payload too large").await;
                    return;
                }
                match handle_connect(&shared, &text, &challenge, index, has_origin) {
                    Ok((res, scopes)) => {
                        if !send_text(&mut socket, &res).await { return; }
                        shared.handshakes_ok.fetch_add(1, Ordering::SeqCst);
                        let can_read = scopes_allow(&scopes, SCOPE_READ);
                        let tool_events = declares_tool_events(&text);
                        if let Some(c) = lock(&shared.conns).get_mut(&conn_id) {
                            c.authed = true;
                            c.can_read = can_read;
                            c.tool_events = tool_events;
                        }
                        ctx.scopes = scopes;
                        break;
                    }
                    Err(rej) => {
                        if let Some(res) = rej.res
                            && !send_text(&mut socket, &res).await { return; }
                        close_socket(&mut socket, rej.close_code, &rej.close_reason).await;
                        return;
                    }
                }
            }
        }
    }

    if shared.echo {
        echo_loop(&mut socket, &mut rx).await;
        return;
    }

    // ---- authenticated phase ----
    let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + TICK_INTERVAL, TICK_INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            out = rx.recv() => {
                let Some(out) = out else { return };
                if let Step::Stop = write_out(&mut socket, &mut ctx, out).await { return; }
            }
            _ = tick.tick() => {
                let out = Out::Event("tick".to_string(), json!({"ts": now_ms()}));
                if let Step::Stop = write_out(&mut socket, &mut ctx, out).await { return; }
            }
            msg = socket.recv() => {
                match msg {
                    Some(Ok(Message::Text(t))) => requests::handle_frame(&mut ctx, t.as_str()),
                    Some(Ok(Message::Binary(_))) | Some(Ok(Message::Ping(_))) | Some(Ok(Message::Pong(_))) => {}
                    Some(Ok(Message::Close(_))) | Some(Err(_)) | None => return,
                }
            }
        }
    }
}

async fn echo_loop(socket: &mut WebSocket, rx: &mut mpsc::UnboundedReceiver<Out>) {
    loop {
        tokio::select! {
            out = rx.recv() => match out {
                Some(Out::Close(code, reason)) => { close_socket(socket, code, &reason).await; return; }
                Some(Out::Drop) | None => return,
                Some(_) => {}
            },
            msg = socket.recv() => match msg {
                Some(Ok(Message::Text(text))) => {
                    let echo = echo_frame(text.as_str());
                    if socket.send(Message::Text(echo.into())).await.is_err() { return; }
                }
                Some(Ok(m @ Message::Binary(_))) => {
                    if socket.send(m).await.is_err() { return; }
                }
                Some(Ok(Message::Ping(_))) | Some(Ok(Message::Pong(_))) => {}
                Some(Ok(Message::Close(_))) | Some(Err(_)) | None => return,
            },
        }
    }
}

/// The echo of one frame, built without parsing it: a `chat.history` request (in the shape
/// browsers send, `{"type":"req","id":"…","method":"chat.history",…}`) is answered with a `res`
/// carrying it (the request → response path); anything else comes back as a `chat` event
/// carrying it (the event path).
fn echo_frame(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 64);
    let history_id = text
        .strip_prefix(r#"{"type":"req","id":""#)
        .and_then(|rest| rest.split_once('"'))
        .filter(|(id, rest)| !id.contains('\\') && rest.starts_with(r#","method":"chat.history""#))
        .map(|(id, _)| id);
    match history_id {
        Some(id) => {
            out.push_str(r#"{"type":"res","id":""#);
            out.push_str(id);
            out.push_str(r#"","ok":true,"payload":"#);
        }
        None => out.push_str(r#"{"type":"event","event":"chat","payload":"#),
    }
    out.push_str(text);
    out.push('}');
    out
}

/// Whether a `connect` request lists `tool-events` in `params.caps`.
fn declares_tool_events(connect: &str) -> bool {
    serde_json::from_str::<serde_json::Value>(connect)
        .ok()
        .and_then(|v| v["params"]["caps"].as_array().map(|caps| caps.iter().any(|c| c == "tool-events")))
        .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::echo_frame;

    #[test]
    fn a_history_request_is_answered_and_anything_else_comes_back_as_an_event() {
        let history = r#"{"type":"req","id":"s7:b1","method":"chat.history","params":{}}"#;
        let answer: serde_json::Value = serde_json::from_str(&echo_frame(history)).unwrap();
        assert_eq!(
            (answer["type"].as_str(), answer["id"].as_str(), answer["ok"].as_bool()),
            (Some("res"), Some("s7:b1"), Some(true))
        );
        assert_eq!(answer["payload"]["method"], "chat.history");
        let send = r#"{"type":"req","id":"b1","method":"chat.send","params":{}}"#;
        let event: serde_json::Value = serde_json::from_str(&echo_frame(send)).unwrap();
        assert_eq!((event["type"].as_str(), event["event"].as_str()), (Some("event"), Some("chat")));
        assert_eq!(event["payload"]["method"], "chat.send");
    }
}
