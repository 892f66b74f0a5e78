//! The Discord gateway WebSocket of [`FakeDiscord`](crate::discord::FakeDiscord), on the same
//! origin as its REST API (as OpenClaw's Discord plugin requires of a custom `DISCORD_API_URL`):
//! `GET /api/v10/gateway/bot` names it; a connection gets HELLO (op 10), then IDENTIFY (op 2)
//! is answered with READY, or RESUME (op 6) with RESUMED; heartbeats (op 1) get ACKs (op 11).
//! A bad token closes with 4004, the Message Content intent without the app's flag with 4014,
//! as Discord does; either can be forced for the next IDENTIFY. DMs are pushed as MESSAGE_CREATE.

use std::collections::HashMap;

use axum::extract::State;
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::sync::mpsc;

use crate::discord::{MESSAGE_CONTENT, MESSAGE_CONTENT_LIMITED, Shared, authenticate};

/// The Message Content intent a client asks for in IDENTIFY.
const INTENT_MESSAGE_CONTENT: u64 = 1 << 15;
const HEARTBEAT_INTERVAL_MS: u64 = 41_250;

/// What the fake pushes into a live connection.
pub(crate) enum Push {
    Dispatch(&'static str, Value),
    /// HEARTBEAT_ACK (op 11).
    Ack,
    Close(u16, &'static str),
}

/// One gateway connection, live or ended.
#[derive(Debug, Clone, Default)]
pub struct Connection {
    /// The token it identified (or resumed) with.
    pub token: Option<String>,
    /// What it did, in order: `identify`, `resume`, `heartbeat`, `closed by client`, `closed 4004`…
    pub events: Vec<String>,
    pub open: bool,
    pub intents: Option<u64>,
}

#[derive(Default)]
pub(crate) struct GatewayState {
    pub connections: Vec<Connection>,
    /// Sender into each open connection, by connection index.
    pub pushers: HashMap<usize, mpsc::UnboundedSender<Push>>,
    /// A close code forced on the next IDENTIFY.
    pub close_next_identify: Option<u16>,
    pub sequence: u64,
}

pub(crate) async fn gateway_bot(State(state): State<Shared>, headers: HeaderMap) -> Response {
    match authenticate(&state, &headers, "/gateway/bot").await {
        Ok(a) if a.bot => {
            let url = format!("ws://{}", state.lock().unwrap().addr.expect("set at spawn"));
            axum::Json(json!({
                "url": url, "shards": 1,
                "session_start_limit": { "total": 1000, "remaining": 999, "reset_after": 14_400_000, "max_concurrency": 1 },
            }))
            .into_response()
        }
        Ok(_) => crate::discord::discord_error(axum::http::StatusCode::UNAUTHORIZED, "401: Unauthorized", 0),
        Err(res) => res,
    }
}

/// `GET /?v=10&encoding=json` with an upgrade.
pub(crate) async fn upgrade(State(state): State<Shared>, ws: WebSocketUpgrade) -> Response {
    ws.on_upgrade(move |socket| connection(state, socket))
}

fn frame(op: u8, d: Value, s: Option<u64>, t: Option<&str>) -> Message {
    Message::Text(json!({ "op": op, "d": d, "s": s, "t": t }).to_string().into())
}

async fn connection(state: Shared, socket: WebSocket) {
    let (tx, mut rx) = mpsc::unbounded_channel();
    let index = {
        let mut inner = state.lock().unwrap();
        inner.gateway.connections.push(Connection { open: true, ..Default::default() });
        let index = inner.gateway.connections.len() - 1;
        inner.gateway.pushers.insert(index, tx);
        index
    };
    let record = |event: String| {
        if let Some(c) = state.lock().unwrap().gateway.connections.get_mut(index) {
            c.events.push(event);
        }
    };
    let (mut sink, mut stream) = socket.split();
    let hello = frame(10, json!({ "heartbeat_interval": HEARTBEAT_INTERVAL_MS }), None, None);
    let mut ended = if sink.send(hello).await.is_err() { Some("closed by client".to_string()) } else { None };
    while ended.is_none() {
        tokio::select! {
            incoming = stream.next() => {
                let text = match incoming {
                    Some(Ok(Message::Text(text))) => text.to_string(),
                    Some(Ok(Message::Ping(_) | Message::Pong(_) | Message::Binary(_))) => continue,
                    Some(Ok(Message::Close(_))) | None | Some(Err(_)) => {
                        ended = Some("closed by client".into());
                        continue;
                    }
                };
                let payload: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
                let reply = on_payload(&state, index, &payload);
                for push in reply {
                    if let Some(why) = send(&mut sink, &state, push).await {
                        ended = Some(why);
                        break;
                    }
                }
            }
            pushed = rx.recv() => {
                let Some(push) = pushed else { break };
                if let Some(why) = send(&mut sink, &state, push).await {
                    ended = Some(why);
                }
            }
        }
    }
    if let Some(why) = ended {
        record(why);
    }
    let mut inner = state.lock().unwrap();
    inner.gateway.pushers.remove(&index);
    if let Some(c) = inner.gateway.connections.get_mut(index) {
        c.open = false;
    }
}

/// Sends one push; `Some(reason)` when the connection ends with it.
async fn send(
    sink: &mut futures_util::stream::SplitSink<WebSocket, Message>,
    state: &Shared,
    push: Push,
) -> Option<String> {
    match push {
        Push::Dispatch(t, d) => {
            let s = {
                let mut inner = state.lock().unwrap();
                inner.gateway.sequence += 1;
                inner.gateway.sequence
            };
            sink.send(frame(0, d, Some(s), Some(t))).await.err().map(|_| "closed by client".into())
        }
        Push::Ack => sink.send(frame(11, Value::Null, None, None)).await.err().map(|_| "closed by client".into()),
        Push::Close(code, reason) => {
            let _ = sink.send(Message::Close(Some(CloseFrame { code, reason: reason.into() }))).await;
            Some(format!("closed {code}"))
        }
    }
}

/// The fake's answer to one client payload.
fn on_payload(state: &Shared, index: usize, payload: &Value) -> Vec<Push> {
    let mut inner = state.lock().unwrap();
    let op = payload["op"].as_u64().unwrap_or(u64::MAX);
    let token = payload["d"]["token"].as_str().map(|t| t.strip_prefix("Bot ").unwrap_or(t).to_string());
    let event = match op {
        1 => "heartbeat",
        2 => "identify",
        6 => "resume",
        _ => "other",
    };
    let forced = if op == 2 { inner.gateway.close_next_identify.take() } else { None };
    let account = token.as_ref().and_then(|t| inner.tokens.get(t)).filter(|a| a.bot && !a.revoked).cloned();
    let intents = payload["d"]["intents"].as_u64();
    if let Some(c) = inner.gateway.connections.get_mut(index) {
        c.events.push(event.to_string());
        if matches!(op, 2 | 6) {
            c.token = token.clone();
            c.intents = intents.or(c.intents);
        }
    }
    match op {
        1 => vec![Push::Ack],
        2 | 6 => {
            let Some(account) = account else { return vec![Push::Close(4004, "Authentication failed.")] };
            if let Some(code) = forced {
                let reason = if code == 4014 { "Disallowed intent(s)." } else { "Authentication failed." };
                return vec![Push::Close(code, reason)];
            }
            let content_allowed = account.app_flags & (MESSAGE_CONTENT | MESSAGE_CONTENT_LIMITED) != 0;
            if op == 2 && intents.unwrap_or(0) & INTENT_MESSAGE_CONTENT != 0 && !content_allowed {
                return vec![Push::Close(4014, "Disallowed intent(s).")];
            }
            let addr = inner.addr.expect("set at spawn");
            if op == 6 {
                return vec![Push::Dispatch("RESUMED", json!({}))];
            }
            vec![Push::Dispatch(
                "READY",
                json!({
                    "v": 10,
                    "user": { "id": account.user_id, "username": account.username, "discriminator": "0",
                              "global_name": null, "avatar": null, "bot": true, "flags": 0 },
                    "guilds": [],
                    "session_id": format!("fake-session-{index}"),
                    "resume_gateway_url": format!("ws://{addr}"),
                    "shard": [0, 1],
                    "application": { "id": account.app_id, "flags": account.app_flags },
                }),
            )]
        }
        _ => Vec::new(),
    }
}
