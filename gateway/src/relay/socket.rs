//! One browser (or API client) socket: wait for the machine with live stages, join the user's
//! agent link, then relay both ways with our own heartbeat and size limits.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket, WebSocketUpgrade};
use axum::http::{HeaderMap, header};
use axum::response::Response;
use futures_util::stream::SplitSink;
use futures_util::{SinkExt, StreamExt};
use serde::Deserialize;
use serde_json::json;

use super::Revoked;
use super::frames::{self, Rejected};
use super::hub::{Hub, Outbound, Subscription};
use super::replay::Resume;
use crate::agent_credentials;
use crate::app::AppState;
use crate::auth::{AuthUser, AuthVia};
use crate::domain::UserId;
use crate::error::{AppError, AppResult};
use crate::json::Query;

/// Browser messages above this are refused with close 1009.
pub const MAX_BROWSER_MESSAGE: usize = 4 * 1024 * 1024;
const HEARTBEAT: Duration = Duration::from_secs(25);
const PONG_DEADLINE: Duration = Duration::from_secs(60);
const MAX_SOCKETS_PER_USER: usize = 16;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WsQuery {
    resume: Option<u64>,
}

type BrowserSink = SplitSink<WebSocket, Message>;

pub async fn upgrade(
    state: AppState,
    auth: AuthUser,
    headers: HeaderMap,
    Query(query): Query<WsQuery>,
    ws: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> AppResult<Response> {
    let ws = ws.map_err(|e| AppError::bad_request("websocket_required", e.body_text()))?;
    if let Some(origin) = headers.get(header::ORIGIN) {
        let allowed = origin.to_str().is_ok_and(|o| state.settings.origin_allowed(o));
        if !allowed {
            return Err(AppError::forbidden("cross_origin", "this origin may not open the chat socket"));
        }
    }
    if let Some(hub) = state.relays.existing_hub(&auth.user_id).await
        && hub.socket_count() >= MAX_SOCKETS_PER_USER
    {
        return Err(AppError::rate_limited(5));
    }
    let ws = ws
        // Our own limit (below) answers with 1009; this one only bounds memory.
        .max_message_size(MAX_BROWSER_MESSAGE * 2)
        .max_frame_size(MAX_BROWSER_MESSAGE * 2)
        .read_buffer_size(16 * 1024)
        .write_buffer_size(16 * 1024)
        .on_failed_upgrade(|e| tracing::debug!(error = %e, "websocket upgrade failed"));
    Ok(ws.on_upgrade(move |socket| run(state, auth, query.resume, socket)))
}

async fn run(state: AppState, auth: AuthUser, resume: Option<u64>, socket: WebSocket) {
    let (mut sink, mut stream) = socket.split();
    let revocations = state.relays.revocations();
    let user = auth.user_id.clone();
    let Some(hub) = join(&state, &user, &mut sink, &mut stream).await else { return };
    let Some(subscription) = hub.subscribe(resume) else {
        close(&mut sink, 1013, "the agent link closed; reconnect").await;
        return;
    };
    let socket_id = subscription.socket;
    relay(&hub, subscription, &auth, revocations, &mut sink, &mut stream).await;
    hub.unsubscribe(socket_id);
    if hub.socket_count() == 0 {
        let state = state.clone();
        tokio::spawn(async move {
            tokio::time::sleep(state.settings.agent_link_idle).await;
            state.relays.retire_if_idle(&user, &hub).await;
        });
    }
}

/// Starts the machine if needed (streaming its stages), then joins the user's agent link.
async fn join(
    state: &AppState,
    user: &UserId,
    sink: &mut BrowserSink,
    stream: &mut futures_util::stream::SplitStream<WebSocket>,
) -> Option<Arc<Hub>> {
    let (current, mut stages) = state.machines.subscribe(user);
    let machines = state.machines.clone();
    let starting_user = user.clone();
    let mut start = tokio::spawn(async move { machines.ensure_ready(&starting_user).await });
    let mut pending = (current.stage != "stopped").then_some(current);
    let mut stages_open = true;
    let address = loop {
        if let Some(status) = pending.take()
            && send_text(sink, frames::roost_event("roost.status", json!(status))).await.is_err()
        {
            return None;
        }
        tokio::select! {
            done = &mut start => match done {
                Ok(Ok(address)) => break address,
                Ok(Err(e)) => {
                    let _ = send_text(sink, frames::roost_event("roost.error", json!({ "code": "agent_unavailable", "message": e.0 }))).await;
                    close(sink, 1011, "the agent could not be started").await;
                    return None;
                }
                Err(_) => {
                    close(sink, 1011, "starting the agent failed").await;
                    return None;
                }
            },
            update = stages.recv(), if stages_open => match update {
                Ok(status) => pending = Some(status),
                Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                Err(tokio::sync::broadcast::error::RecvError::Closed) => stages_open = false,
            },
            incoming = stream.next() => match incoming {
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => return None,
                // Requests before `roost.ready` are not accepted; the UI waits for ready.
                Some(Ok(_)) => {}
            },
        }
    };
    let token = agent_credentials::gateway_token(&state.secret, user);
    match state.relays.hub(user, &address, &token).await {
        Ok(hub) => {
            let hello = hub.hello();
            let ready = json!({
                "server": hello["server"], "sessionDefaults": hello["snapshot"]["sessionDefaults"],
                "policy": { "maxPayload": MAX_BROWSER_MESSAGE }, "methods": frames::ALLOWED_METHODS,
            });
            send_text(sink, frames::roost_event("roost.ready", ready)).await.ok()?;
            Some(hub)
        }
        Err(e) => {
            tracing::warn!(user_id = %user, error = %e, "agent handshake failed");
            let _ = send_text(
                sink,
                frames::roost_event("roost.error", json!({ "code": "agent_unreachable", "message": e.to_string() })),
            )
            .await;
            close(sink, 1011, "could not connect to the agent").await;
            None
        }
    }
}

async fn relay(
    hub: &Hub,
    subscription: Subscription,
    auth: &AuthUser,
    mut revocations: tokio::sync::broadcast::Receiver<Revoked>,
    sink: &mut BrowserSink,
    stream: &mut futures_util::stream::SplitStream<WebSocket>,
) {
    let Subscription { socket, backlog, mut frames } = subscription;
    match backlog {
        Resume::Replay(missed) => {
            for frame in missed {
                if sink.send(Message::Text(frame)).await.is_err() {
                    return;
                }
            }
        }
        Resume::Gap { last_seq } => {
            let gap = frames::roost_event(
                "roost.gap",
                json!({ "lastSeq": last_seq, "message": "some events were missed; reload history" }),
            );
            if send_text(sink, gap).await.is_err() {
                return;
            }
        }
    }
    let mut heartbeat = tokio::time::interval_at(tokio::time::Instant::now() + HEARTBEAT, HEARTBEAT);
    let mut last_pong = Instant::now();
    loop {
        tokio::select! {
            incoming = stream.next() => {
                let message = match incoming {
                    Some(Ok(m)) => m,
                    Some(Err(_)) | None => return,
                };
                match message {
                    Message::Text(text) => {
                        if text.len() > MAX_BROWSER_MESSAGE {
                            close(sink, 1009, "message too large").await;
                            return;
                        }
                        if forward(hub, socket, text, sink).await.is_err() {
                            return;
                        }
                    }
                    Message::Binary(_) => {
                        let error = frames::roost_event("roost.error", json!({ "code": "invalid_frame", "message": "binary frames are not supported" }));
                        if send_text(sink, error).await.is_err() {
                            return;
                        }
                    }
                    Message::Pong(_) => last_pong = Instant::now(),
                    Message::Ping(_) => {}
                    Message::Close(_) => return,
                }
            }
            outbound = frames.recv() => match outbound {
                Some(Outbound::Frame(frame)) => {
                    if sink.send(Message::Text(frame)).await.is_err() {
                        return;
                    }
                }
                Some(Outbound::Close(code, reason)) => {
                    close(sink, code, reason).await;
                    return;
                }
                None => {
                    let (code, reason) = if hub.is_closed() { (1011, "the connection to the agent was lost; reconnect to resume") } else { (1013, "this connection fell behind; reconnect to resume") };
                    close(sink, code, reason).await;
                    return;
                }
            },
            revoked = revocations.recv() => {
                if let Ok(revoked) = revoked && opened_with(auth, &revoked) {
                    close(sink, 4401, "signed out").await;
                    return;
                }
            }
            _ = heartbeat.tick() => {
                if last_pong.elapsed() > PONG_DEADLINE {
                    close(sink, 1001, "no heartbeat").await;
                    return;
                }
                if sink.send(Message::Ping(Default::default())).await.is_err() {
                    return;
                }
            }
        }
    }
}

fn opened_with(auth: &AuthUser, revoked: &Revoked) -> bool {
    match (revoked, &auth.via) {
        (Revoked::Session { token_hash }, AuthVia::Session { token_hash: mine }) => token_hash == mine,
        (Revoked::ApiToken { token_id }, AuthVia::ApiToken { token_id: mine }) => token_id == mine,
        (Revoked::ClerkSession { session_id }, AuthVia::Clerk { session_id: mine }) => session_id == mine,
        (Revoked::User(user), _) => *user == auth.user_id,
        _ => false,
    }
}

/// Checks a browser frame and sends it upstream, or answers it with an error.
async fn forward(hub: &Hub, socket: u64, text: Utf8Bytes, sink: &mut BrowserSink) -> Result<(), ()> {
    match frames::parse_browser_request(text.as_str()) {
        Ok(request) => {
            tracing::debug!(method = %request.method, "relaying request");
            hub.send(request.routed(socket)).await.map_err(|_| ())
        }
        Err(Rejected::Refused { id, code, message }) => {
            send_text(sink, frames::error_response(&id, code, &message)).await
        }
        Err(Rejected::Malformed(message)) => {
            send_text(sink, frames::roost_event("roost.error", json!({ "code": "invalid_frame", "message": message })))
                .await
        }
    }
}

async fn send_text(sink: &mut BrowserSink, text: String) -> Result<(), ()> {
    sink.send(Message::Text(text.into())).await.map_err(|_| ())
}

async fn close(sink: &mut BrowserSink, code: u16, reason: &'static str) {
    let _ = sink.send(Message::Close(Some(CloseFrame { code, reason: reason.into() }))).await;
    let _ = sink.close().await;
}
