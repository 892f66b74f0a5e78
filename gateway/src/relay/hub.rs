//! One upstream link per user: agent events are numbered, kept for resume and fanned out to the
//! user's browser sockets; requests from those sockets and Roost's own RPCs share the link.

use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::ws::Utf8Bytes;
use futures_util::{SinkExt, StreamExt};
use serde_json::Value;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

use super::Explain;
use super::frames::{self, FromAgent, Route};
use super::replay::{Cursor, ReplayBuffer, Resume};
use crate::domain::UserId;
use crate::openclaw::Upstream;

/// Frames waiting for one browser. A browser that falls this far behind is dropped and resumes.
const SOCKET_QUEUE: usize = 256;
/// Requests waiting to go upstream; senders wait when it is full (backpressure).
const AGENT_QUEUE: usize = 64;
/// Chat sends awaiting the agent's answer, per link, and their bytes; past either a send is not
/// relayed to other tabs.
const PENDING_SENDS: usize = 256;
const PENDING_SEND_BYTES: usize = 8 * 1024 * 1024;
/// What browsers hear when Roost closes the link itself: resume (on this or another instance).
const DRAINING: (u16, &str) = (1012, "Roost is restarting; reconnect to resume");

/// How the agent link watches its health.
#[derive(Debug, Clone, Copy)]
pub struct AgentTimings {
    pub ping: Duration,
    /// Silence this long (no frame, no pong) means a dead link.
    pub silence: Duration,
    /// A frame the agent does not take within this time means a stalled link.
    pub write: Duration,
}

pub enum Outbound {
    Frame(Utf8Bytes),
    Close(u16, &'static str),
}

/// Hears every chat run event the agent sends (a run's progress, and its end), with the error
/// message the page is shown when the run failed.
pub type OnRun = Arc<dyn Fn(&frames::ChatRun<'_>, Option<&str>) + Send + Sync>;

pub struct Hub {
    to_agent: mpsc::Sender<Message>,
    hello: Value,
    replay: Arc<Mutex<ReplayBuffer>>,
    state: Mutex<HubState>,
    next_socket: AtomicU64,
    next_rpc: AtomicU64,
    /// Roost's reason for a failed run of this user, where it has one.
    explain: (Explain, UserId),
    /// Bumped whenever the socket count or closed state changes (the idle watch waits on it).
    changes: watch::Sender<u64>,
}

#[derive(Default)]
struct HubState {
    sockets: HashMap<u64, mpsc::Sender<Outbound>>,
    rpcs: HashMap<String, oneshot::Sender<Value>>,
    closed: bool,
    /// Roost itself is closing the link (idle, or shutting down).
    draining: bool,
    /// Since when no socket has used the link (`None` while one is subscribed).
    idle_since: Option<Instant>,
    /// Routed id of a chat send -> the send (its frame and when it was sent), made a
    /// `roost.message` once the agent accepts it (a refused message never appears in the user's
    /// other tabs). The frame is shared, not copied, and only an accepted one is read.
    sends: HashMap<String, (Utf8Bytes, i64)>,
    /// The bytes of the frames in `sends`.
    send_bytes: usize,
}

pub struct Subscription {
    pub socket: u64,
    pub backlog: Resume,
    pub frames: mpsc::Receiver<Outbound>,
}

#[derive(Debug, thiserror::Error)]
pub enum RpcError {
    #[error("the agent connection closed")]
    Closed,
    #[error("the agent did not answer within {0:?}")]
    Timeout(Duration),
}

pub enum TrySend {
    Full(String),
    Closed,
}

impl Hub {
    /// Takes over a handshaken upstream. `on_run` hears each chat run's events.
    pub fn start(
        upstream: Upstream,
        replay: Arc<Mutex<ReplayBuffer>>,
        explain: (Explain, UserId),
        on_run: OnRun,
        timings: AgentTimings,
    ) -> Arc<Self> {
        let (to_agent, mut outgoing) = mpsc::channel::<Message>(AGENT_QUEUE);
        let hub = Arc::new(Self {
            to_agent,
            hello: upstream.hello,
            replay,
            state: Mutex::new(HubState { idle_since: Some(Instant::now()), ..HubState::default() }),
            next_socket: AtomicU64::new(1),
            next_rpc: AtomicU64::new(1),
            explain,
            changes: watch::channel(0).0,
        });
        let (mut sink, mut stream) = upstream.socket.split();
        let mut writer = tokio::spawn(async move {
            while let Some(message) = outgoing.recv().await {
                match tokio::time::timeout(timings.write, sink.send(message)).await {
                    Ok(Ok(())) => {}
                    Ok(Err(e)) => return tracing::debug!(error = %e, "writing to the agent failed"),
                    Err(_) => return tracing::warn!("the agent stopped taking frames; closing its link"),
                }
            }
            let _ = tokio::time::timeout(timings.write, sink.close()).await;
        });
        let reader_hub = hub.clone();
        tokio::spawn(async move {
            let mut heartbeat = tokio::time::interval_at(Instant::now() + timings.ping, timings.ping);
            let mut last_heard = Instant::now();
            let close_code = loop {
                tokio::select! {
                    _ = &mut writer => break None,
                    message = stream.next() => {
                        last_heard = Instant::now();
                        match message {
                            Some(Ok(Message::Text(text))) => reader_hub.route(text.as_str(), &on_run),
                            Some(Ok(Message::Close(frame))) => break frame.map(|f| u16::from(f.code)),
                            Some(Ok(_)) => {}
                            Some(Err(e)) => {
                                tracing::debug!(error = %e, "agent link failed");
                                break None;
                            }
                            None => break None,
                        }
                    }
                    _ = heartbeat.tick() => {
                        // The agent answers pings and sends ticks; silence this long means a dead link.
                        if last_heard.elapsed() > timings.silence {
                            tracing::warn!("agent link silent; closing it");
                            break None;
                        }
                        let _ = reader_hub.to_agent.try_send(Message::Ping(Default::default()));
                    }
                }
            };
            let draining = reader_hub.state.lock().expect("hub lock").draining;
            reader_hub.close(if draining { DRAINING } else { frames::browser_close(close_code) });
            writer.abort();
        });
        hub
    }

    pub fn hello(&self) -> &Value {
        &self.hello
    }

    pub fn is_closed(&self) -> bool {
        self.state.lock().expect("hub lock").closed
    }

    pub fn socket_count(&self) -> usize {
        self.state.lock().expect("hub lock").sockets.len()
    }

    /// The numbering epoch of this link's events (see `replay`).
    pub fn epoch(&self) -> String {
        self.replay.lock().expect("replay lock").epoch().to_string()
    }

    /// Resolves once no socket and no Roost call has used the link for `idle` (a closed link
    /// has no sockets, so it resolves `idle` after closing).
    pub async fn idle_for(&self, idle: Duration) {
        let mut changes = self.changes.subscribe();
        loop {
            let since = self.state.lock().expect("hub lock").idle_since;
            match since {
                Some(since) if since.elapsed() >= idle => return,
                Some(since) => {
                    tokio::select! {
                        _ = tokio::time::sleep_until(since + idle) => {}
                        _ = changes.changed() => {}
                    }
                }
                None => {
                    let _ = changes.changed().await;
                }
            }
        }
    }

    fn changed(&self) {
        self.changes.send_modify(|n| *n = n.wrapping_add(1));
    }

    /// Registers a browser socket and returns what it missed since `resume` (if given).
    /// Done under the replay lock, so no event is lost or sent twice between backlog and live.
    pub fn subscribe(&self, resume: Option<Cursor>) -> Option<Subscription> {
        let (tx, rx) = mpsc::channel(SOCKET_QUEUE);
        let replay = self.replay.lock().expect("replay lock");
        let mut state = self.state.lock().expect("hub lock");
        if state.closed {
            return None;
        }
        let socket = self.next_socket.fetch_add(1, Ordering::Relaxed);
        state.sockets.insert(socket, tx);
        state.idle_since = None;
        let backlog = match resume {
            Some(cursor) => replay.resume_after(&cursor),
            None => Resume::Replay(Vec::new()),
        };
        drop((state, replay));
        self.changed();
        Some(Subscription { socket, backlog, frames: rx })
    }

    pub fn unsubscribe(&self, socket: u64) {
        let mut state = self.state.lock().expect("hub lock");
        state.remove_socket(socket);
        if !state.sends.is_empty() {
            state.sends.retain(|id, _| !matches!(frames::parse_route(id), Route::Socket(s, _) if s == socket));
            state.send_bytes = state.sends.values().map(|(frame, _)| frame.len()).sum();
        }
        drop(state);
        self.changed();
    }

    /// Sends a browser frame upstream. The future waits while the link is busy (backpressure)
    /// and borrows nothing, so a socket can keep serving heartbeats and revocations meanwhile.
    /// Hands a frame to the link's writer at once when its queue has room (the usual case); a
    /// full queue gives the frame back for [`Hub::send`], which waits.
    pub fn try_send(&self, text: String) -> Result<(), TrySend> {
        match self.to_agent.try_send(Message::text(text)) {
            Ok(()) => Ok(()),
            Err(mpsc::error::TrySendError::Full(Message::Text(text))) => Err(TrySend::Full(text.to_string())),
            Err(mpsc::error::TrySendError::Full(_)) => Err(TrySend::Closed),
            Err(mpsc::error::TrySendError::Closed(_)) => Err(TrySend::Closed),
        }
    }

    pub fn send(&self, text: String) -> impl Future<Output = Result<(), RpcError>> + Send + 'static {
        let to_agent = self.to_agent.clone();
        async move { to_agent.send(Message::text(text)).await.map_err(|_| RpcError::Closed) }
    }

    /// Roost's own request to the agent (history, sessions), answered on this link.
    pub async fn call(&self, method: &str, params: Value, timeout: Duration) -> Result<Value, RpcError> {
        let id = format!("rpc:{}", self.next_rpc.fetch_add(1, Ordering::Relaxed));
        let (tx, rx) = oneshot::channel();
        {
            let mut state = self.state.lock().expect("hub lock");
            if state.closed {
                return Err(RpcError::Closed);
            }
            state.rpcs.insert(id.clone(), tx);
        }
        let frame = serde_json::json!({ "type": "req", "id": id, "method": method, "params": params });
        let result = tokio::time::timeout(timeout, async {
            self.send(frame.to_string()).await?;
            rx.await.map_err(|_| RpcError::Closed)
        })
        .await
        .unwrap_or(Err(RpcError::Timeout(timeout)));
        {
            let mut state = self.state.lock().expect("hub lock");
            state.rpcs.remove(&id);
            if state.sockets.is_empty() {
                state.idle_since = Some(Instant::now());
            }
        }
        self.changed();
        result
    }

    /// Closes the link to the agent (the reader then closes every browser socket).
    pub fn shutdown(&self) {
        self.state.lock().expect("hub lock").draining = true;
        let _ = self
            .to_agent
            .try_send(Message::Close(Some(CloseFrame { code: CloseCode::Normal, reason: "roost closing".into() })));
    }

    fn route(&self, text: &str, on_run: &OnRun) {
        match frames::classify(text) {
            FromAgent::Dropped => {}
            FromAgent::Sequenced => {
                let run = frames::chat_run(text);
                // Only a failed run's last event pays for the lookup.
                let explained = match &run {
                    Some(run) if run.state == "error" => {
                        let (explain, user) = &self.explain;
                        explain.failure(user).and_then(|why| frames::explain_failed_run(text, why))
                    }
                    _ => None,
                };
                let text = explained.as_deref().unwrap_or(text);
                if let Some(run) = &run {
                    let error = (run.state == "error").then(|| frames::error_message(text)).flatten();
                    on_run(run, error.as_deref());
                }
                let mut replay = self.replay.lock().expect("replay lock");
                let seq = replay.next_seq();
                let Some(numbered) = frames::with_seq(text, seq) else { return };
                let frame = Utf8Bytes::from(numbered);
                let over_budget = replay.push(seq, frame.clone()).then(|| replay.memory().clone());
                self.fan_out(frame);
                // Trimming takes other users' buffer locks, so never while holding this one.
                drop(replay);
                if let Some(memory) = over_budget {
                    memory.trim();
                }
            }
            FromAgent::Unsequenced | FromAgent::Other => self.fan_out(Utf8Bytes::from(text)),
            FromAgent::Response { id } => match frames::parse_route(id) {
                Route::Socket(socket, original) => {
                    let frame = Utf8Bytes::from(frames::with_id(text, id, original));
                    let mut state = self.state.lock().expect("hub lock");
                    // Only answers to chat sends find anything here; the rest pay one emptiness check.
                    let accepted = if state.sends.is_empty() { None } else { state.sends.remove(id) };
                    if let Some((frame, _)) = &accepted {
                        state.send_bytes -= frame.len();
                    }
                    let mut dropped = false;
                    if let Some(tx) = state.sockets.get(&socket)
                        && tx.try_send(Outbound::Frame(frame)).is_err()
                    {
                        state.remove_socket(socket);
                        dropped = true;
                    }
                    drop(state);
                    if dropped {
                        self.changed();
                    }
                    if let Some((frame, sent_at)) = accepted
                        && frames::is_ok_response(text)
                        && let Some(event) = frames::user_message_event(frame.as_str(), sent_at)
                    {
                        self.publish(socket, &event);
                    }
                }
                Route::Rpc(id) => {
                    let waiter = self.state.lock().expect("hub lock").rpcs.remove(id);
                    if let (Some(waiter), Ok(value)) = (waiter, serde_json::from_str(text)) {
                        let _ = waiter.send(value);
                    }
                }
                Route::Unknown => tracing::debug!(id, "response for an unknown request"),
            },
        }
    }

    /// Publishes the user's message in the chat send `frame` (see [`Hub::publish`]) when the
    /// agent answers the request routed as `routed` with `ok:true`. Called before the request is
    /// sent, so the answer cannot come first.
    pub fn on_accepted(&self, routed: String, frame: Utf8Bytes, sent_at: i64) {
        let mut state = self.state.lock().expect("hub lock");
        if state.sends.len() < PENDING_SENDS && state.send_bytes + frame.len() <= PENDING_SEND_BYTES {
            state.send_bytes += frame.len();
            if let Some((replaced, _)) = state.sends.insert(routed, (frame, sent_at)) {
                state.send_bytes -= replaced.len();
            }
        } else {
            tracing::debug!("too many chat sends awaiting an answer; this one is not relayed to other tabs");
        }
    }

    /// A Roost event for the user's other sockets (`from` already knows it), numbered and kept
    /// for resume like the agent's events, so a tab that was away still gets it.
    pub fn publish(&self, from: u64, event: &str) {
        let mut replay = self.replay.lock().expect("replay lock");
        let seq = replay.next_seq();
        let Some(numbered) = frames::with_seq(event, seq) else { return };
        let frame = Utf8Bytes::from(numbered);
        let over_budget = replay.push(seq, frame.clone()).then(|| replay.memory().clone());
        self.fan_out_except(frame, Some(from));
        drop(replay);
        if let Some(memory) = over_budget {
            memory.trim();
        }
    }

    /// Queues a frame for every socket; a socket whose queue is full is dropped (it resumes).
    fn fan_out(&self, frame: Utf8Bytes) {
        self.fan_out_except(frame, None);
    }

    fn fan_out_except(&self, frame: Utf8Bytes, except: Option<u64>) {
        let mut state = self.state.lock().expect("hub lock");
        let before = state.sockets.len();
        state.sockets.retain(|id, tx| Some(*id) == except || tx.try_send(Outbound::Frame(frame.clone())).is_ok());
        if state.sockets.len() != before {
            if state.sockets.is_empty() {
                state.idle_since = Some(Instant::now());
            }
            drop(state);
            self.changed();
        }
    }

    fn close(&self, (code, reason): (u16, &'static str)) {
        let mut state = self.state.lock().expect("hub lock");
        state.closed = true;
        for (_, tx) in state.sockets.drain() {
            let _ = tx.try_send(Outbound::Close(code, reason));
        }
        state.rpcs.clear();
        state.sends.clear();
        state.send_bytes = 0;
        state.idle_since = Some(Instant::now());
        drop(state);
        self.changed();
    }
}

impl HubState {
    fn remove_socket(&mut self, socket: u64) {
        if self.sockets.remove(&socket).is_some() && self.sockets.is_empty() {
            self.idle_since = Some(Instant::now());
        }
    }
}
