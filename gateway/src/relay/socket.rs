//! One browser (or API client) socket: wait for the machine with live stages, join the user's
//! agent link, then relay both ways with our own heartbeat and size limits.

use std::collections::HashSet;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket, WebSocketUpgrade};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::Response;
use futures_util::stream::SplitSink;
use futures_util::{SinkExt, StreamExt};
use serde::Deserialize;
use serde_json::json;

use super::frames::{self, BrowserRequest, Rejected};
use super::hub::{Hub, Outbound, RpcError, Subscription, TrySend};
use super::replay::{Cursor, Resume};
use super::sockets::{MAX_SOCKETS_PER_USER, Registration};
use crate::app::AppState;
use crate::auth::touch::Touch;
use crate::auth::{AuthUser, AuthVia};
use crate::chat::admission::Admission;
use crate::domain::{UserId, now_secs};
use crate::error::{AppError, AppResult};
use crate::json::Query;

/// Browser messages above this are refused with close 1009.
pub const MAX_BROWSER_MESSAGE: usize = 4 * 1024 * 1024;
/// A session used over its socket counts as used (for the idle timeout), refreshed this often.
const SESSION_TOUCH: Duration = Duration::from_secs(60);

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WsQuery {
    /// `<epoch>:<seq>` from `roost.ready` and the last `roostSeq` seen.
    resume: Option<String>,
}

type BrowserSink = SplitSink<WebSocket, Message>;
type BrowserStream = futures_util::stream::SplitStream<WebSocket>;
type Sending = Pin<Box<dyn Future<Output = Result<(), RpcError>> + Send>>;

pub async fn upgrade(
    state: AppState,
    auth: AuthUser,
    headers: HeaderMap,
    Query(query): Query<WsQuery>,
    ws: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> AppResult<Response> {
    let ws = ws.map_err(|_| {
        AppError::bad_request(
            "websocket_required",
            "This address opens a WebSocket: connect to it with a WebSocket client.",
        )
    })?;
    if let Some(origin) = headers.get(header::ORIGIN) {
        let allowed = origin.to_str().is_ok_and(|o| state.site.origin_allowed(o));
        if !allowed {
            return Err(AppError::forbidden(
                "cross_origin",
                "This site may not open your chat: open Roost from its own address.",
            ));
        }
    }
    let resume = match query.resume.as_deref() {
        Some(raw) => Some(Cursor::parse(raw).ok_or_else(|| {
            AppError::bad_request(
                "invalid_resume",
                "The resume point must be <epoch>:<seq>, as sent in roost.ready and roostSeq.",
            )
        })?),
        None => None,
    };
    let Some(registration) = state.relays.register(&auth) else {
        return Err(AppError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "too_many_sockets",
            format!(
                "This account already has {MAX_SOCKETS_PER_USER} chat connections open. Close a tab and try again."
            ),
        )
        .retry_after(5));
    };
    let ws = ws
        // Our own limit (below) answers with 1009; this one only bounds memory.
        .max_message_size(MAX_BROWSER_MESSAGE * 2)
        .max_frame_size(MAX_BROWSER_MESSAGE * 2)
        .read_buffer_size(16 * 1024)
        .write_buffer_size(16 * 1024)
        .on_failed_upgrade(|e| tracing::debug!(error = %e, "websocket upgrade failed"));
    // The registration moves into the socket task; a failed upgrade drops it, freeing the place.
    Ok(ws.on_upgrade(move |socket| run(state, auth, registration, resume, socket)))
}

async fn run(
    state: AppState,
    auth: AuthUser,
    mut registration: Registration,
    resume: Option<Cursor>,
    socket: WebSocket,
) {
    let (mut sink, mut stream) = socket.split();
    let user = auth.user_id.clone();
    let Some(hub) = join(&state, &user, &mut registration, &mut sink, &mut stream).await else { return };
    let Some(subscription) = hub.subscribe(resume) else {
        close(&mut sink, 1013, "the agent link closed; reconnect").await;
        return;
    };
    let socket_id = subscription.socket;
    relay(&state, &hub, subscription, &auth, &mut registration, &mut sink, &mut stream).await;
    hub.unsubscribe(socket_id);
}

/// Starts the machine if needed (streaming its stages), then joins the user's agent link.
async fn join(
    state: &AppState,
    user: &UserId,
    registration: &mut Registration,
    sink: &mut BrowserSink,
    stream: &mut BrowserStream,
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
                Ok(Ok(address)) => {
                    // A quick start still shows its stages: send those that arrived meanwhile.
                    while let Ok(status) = stages.try_recv() {
                        if send_text(sink, frames::roost_event("roost.status", json!(status))).await.is_err() {
                            return None;
                        }
                    }
                    break address;
                }
                Ok(Err(e)) => {
                    let _ = send_text(sink, frames::roost_event("roost.error", json!({ "code": e.code, "message": e.message }))).await;
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
            ending = registration.revoked() => {
                let (code, reason) = ending.close_frame();
                close(sink, code, reason).await;
                return None;
            }
        }
    };
    match state.relays.hub(user, &address).await {
        Ok(hub) => {
            let hello = hub.hello();
            let ready = json!({
                "epoch": hub.epoch(),
                "server": hello["server"], "sessionDefaults": hello["snapshot"]["sessionDefaults"],
                "policy": { "maxPayload": MAX_BROWSER_MESSAGE }, "methods": frames::ALLOWED_METHODS,
                // How often `roost.tick` comes: a page that hears nothing for longer knows the link is dead.
                "heartbeatMs": state.relays.timings.browser_ping.as_millis() as u64,
            });
            send_text(sink, frames::roost_event("roost.ready", ready)).await.ok()?;
            Some(hub)
        }
        Err(e) => {
            tracing::warn!(user_id = %user, error = %e, "agent handshake failed");
            let message = "Roost could not connect to your agent; it will try again when you reconnect.";
            let error = json!({ "code": "agent_unreachable", "message": message });
            let _ = send_text(sink, frames::roost_event("roost.error", error)).await;
            close(sink, 1011, "could not connect to the agent").await;
            None
        }
    }
}

async fn relay(
    state: &AppState,
    hub: &Hub,
    subscription: Subscription,
    auth: &AuthUser,
    registration: &mut Registration,
    sink: &mut BrowserSink,
    stream: &mut BrowserStream,
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
                json!({ "lastSeq": last_seq, "epoch": hub.epoch(), "message": "some events were missed; reload history" }),
            );
            if send_text(sink, gap).await.is_err() {
                return;
            }
        }
    }
    let timings = state.relays.timings;
    let mut heartbeat =
        tokio::time::interval_at(tokio::time::Instant::now() + timings.browser_ping, timings.browser_ping);
    let mut last_pong = Instant::now();
    let mut last_touch = Instant::now();
    // A frame on its way to the agent; while it waits, the browser is not read (backpressure).
    let mut sending: Option<Sending> = None;
    // Chats this socket may send to, so only its first message to each costs a lookup.
    let mut admitted: HashSet<String> = HashSet::new();
    loop {
        tokio::select! {
            incoming = stream.next(), if sending.is_none() => {
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
                        if let AuthVia::Session { token_hash } = &auth.via
                            && last_touch.elapsed() >= SESSION_TOUCH
                        {
                            state.touches.touch(Touch::Session { token_hash: token_hash.clone(), now: now_secs() });
                            last_touch = Instant::now();
                        }
                        let checked = match check(&text) {
                            Ok(request) => admit(state, auth, &mut admitted, request).await,
                            Err(answer) => Err(answer),
                        };
                        match checked {
                            Ok(request) => {
                                // A chat send goes to the user's other tabs once the agent accepts it;
                                // only then is its message read.
                                if request.method == "chat.send" {
                                    hub.on_accepted(frames::socket_route(socket, &request.id), text.clone(), now_secs());
                                }
                                match hub.try_send(request.routed(socket)) {
                                Ok(()) => {}
                                Err(TrySend::Full(text)) => sending = Some(Box::pin(hub.send(text))),
                                Err(TrySend::Closed) => {
                                    let (code, reason) = registration.ending_or((1011, "the connection to the agent was lost; reconnect to resume"));
                                    close(sink, code, reason).await;
                                    return;
                                }
                                }
                            }
                            Err(answer) => {
                                if send_text(sink, answer).await.is_err() {
                                    return;
                                }
                            }
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
            sent = async { match sending.as_mut() { Some(send) => send.await, None => std::future::pending().await } }, if sending.is_some() => {
                sending = None;
                if sent.is_err() {
                    close(sink, 1011, "the connection to the agent was lost; reconnect to resume").await;
                    return;
                }
            }
            outbound = frames.recv() => match outbound {
                Some(Outbound::Frame(frame)) => {
                    if sink.send(Message::Text(frame)).await.is_err() {
                        return;
                    }
                }
                Some(Outbound::Close(code, reason)) => {
                    // The agent went away because the user stopped it: say that, not "lost".
                    let (code, reason) = registration.ending_or((code, reason));
                    close(sink, code, reason).await;
                    return;
                }
                None => {
                    let (code, reason) = if hub.is_closed() { (1011, "the connection to the agent was lost; reconnect to resume") } else { (1013, "this connection fell behind; reconnect to resume") };
                    let (code, reason) = registration.ending_or((code, reason));
                    close(sink, code, reason).await;
                    return;
                }
            },
            ending = registration.revoked() => {
                let (code, reason) = ending.close_frame();
                close(sink, code, reason).await;
                return;
            }
            _ = heartbeat.tick() => {
                if last_pong.elapsed() > timings.browser_pong_deadline {
                    close(sink, 1001, "no heartbeat").await;
                    return;
                }
                if sink.send(Message::Ping(Default::default())).await.is_err() {
                    return;
                }
                // Pages cannot see pings; this tells them the link is alive (see `frames::TICK`).
                if sink.send(Message::Text(Utf8Bytes::from_static(frames::TICK))).await.is_err() {
                    return;
                }
            }
        }
    }
}

/// A browser request that may go upstream, or Roost's own answer to it.
fn check(text: &str) -> Result<BrowserRequest<'_>, String> {
    match frames::parse_browser_request(text) {
        Ok(request) => {
            tracing::debug!(method = %request.method, "relaying request");
            Ok(request)
        }
        Err(Rejected::Refused { id, code, message }) => Err(frames::error_response(&id, code, &message)),
        Err(Rejected::Malformed(message)) => {
            Err(frames::roost_event("roost.error", json!({ "code": "invalid_frame", "message": message })))
        }
    }
}

/// A `chat.send` to a chat that does not exist yet creates it, within the chat cap.
async fn admit<'a>(
    state: &AppState,
    auth: &AuthUser,
    admitted: &mut HashSet<String>,
    request: BrowserRequest<'a>,
) -> Result<BrowserRequest<'a>, String> {
    let Some(key) = request.session_key.as_deref().filter(|_| request.method == "chat.send") else {
        return Ok(request);
    };
    if admitted.contains(key) {
        return Ok(request);
    }
    match crate::chat::admission::admit(&state.db, &auth.user_id, key).await {
        Ok(Admission::Admitted) => {
            // Bounded: a user has at most 200 chats; deleted ones may linger until the clear.
            if admitted.len() >= 256 {
                admitted.clear();
            }
            admitted.insert(key.to_string());
            Ok(request)
        }
        Ok(Admission::Refused(message)) => Err(frames::error_response(&request.id, "too_many_sessions", &message)),
        Err(e) => {
            tracing::warn!(error = %e, "checking a chat failed");
            Err(frames::error_response(&request.id, "unavailable", "Your message could not be sent. Try again."))
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
