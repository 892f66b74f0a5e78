//! Stateful in-process fake of the OpenClaw gateway WebSocket (protocol v4).
//!
//! Speaks the frames described in `shared/research/openclaw-protocol.md` (§1, §2, §5):
//! `connect.challenge` -> `connect` req (token + Ed25519 device proof, v3 payload) -> `hello-ok`,
//! then `chat.send` / `chat.history` / `chat.abort` / `sessions.*` / `health`, with `chat` and
//! `agent` events broadcast to every authenticated connection that has read scope.
//!
//! Failure injection lives on the [`FakeOpenClaw`] handle.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::extract::State;
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade, rejection::WebSocketUpgradeRejection};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use base64::Engine;
use serde_json::{Value, json};
use tokio::sync::mpsc;
use tokio::task::{AbortHandle, JoinHandle};

/// Protocol version spoken by the fake (OpenClaw 2026.9.6).
pub const PROTOCOL_VERSION: u64 = 4;
/// Server version reported in `hello-ok.server.version`.
pub const SERVER_VERSION: &str = "2026.9.6-fake";
/// Device token handed out in `hello-ok.auth.deviceToken` when a device proof was given.
pub const FAKE_DEVICE_TOKEN: &str = "fake-device-token";
/// Frames larger than this before `hello-ok` are closed with 1009.
pub const PRE_AUTH_MAX_BYTES: usize = 64 * 1024;
/// `hello-ok.policy.maxPayload`.
pub const MAX_PAYLOAD: usize = 26_214_400;
/// `hello-ok.policy.maxBufferedBytes`.
pub const MAX_BUFFERED_BYTES: usize = 52_428_800;
/// Allowed clock skew for `device.signedAt`.
pub const SIGNATURE_SKEW_MS: i64 = 120_000;

const CLIENT_IDS: &[&str] = &[
    "webchat-ui",
    "openclaw-control-ui",
    "openclaw-browser-copilot",
    "openclaw-tui",
    "webchat",
    "cli",
    "gateway-client",
    "openclaw-macos",
    "openclaw-linux",
    "openclaw-ios",
    "openclaw-watchos",
    "openclaw-android",
    "node-host",
    "openclaw-worker",
    "test",
    "fingerprint",
    "openclaw-probe",
];
const CLIENT_MODES: &[&str] = &["webchat", "cli", "ui", "backend", "node", "worker", "probe", "test"];
const OPERATOR_SCOPES: &[&str] = &[
    "operator.read",
    "operator.write",
    "operator.admin",
    "operator.approvals",
    "operator.questions",
    "operator.pairing",
    "operator.talk",
    "operator.talk.secrets",
];
const SCOPE_READ: &str = "operator.read";
const SCOPE_WRITE: &str = "operator.write";
const METHODS: &[&str] =
    &["health", "chat.send", "chat.history", "chat.abort", "sessions.list", "sessions.delete", "sessions.reset"];
const EVENTS: &[&str] = &["connect.challenge", "agent", "chat", "tick", "health", "shutdown"];

/// What the fake agent answers to `chat.send`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reply {
    /// Streamed as one `chat` delta per word (whitespace kept), then `final`.
    Text(String),
    /// Reply with the user's own message text (streamed like `Text`).
    Echo,
    /// A `chat` event with `state:"error"` and this `errorMessage` (no deltas).
    Error(String),
}

/// Options for [`FakeOpenClaw::spawn`].
#[derive(Clone, Debug)]
pub struct FakeOpenClawOptions {
    /// Shared secret expected in `connect.params.auth.token` (or `auth.password`).
    pub token: String,
    pub reply: Reply,
    /// Sleep before each streamed delta (default 20 ms).
    pub delta_delay: Duration,
    /// The first N accepted WebSocket connections get `UNAVAILABLE` + close 1013 "gateway starting".
    pub starting_rejections: u32,
    /// `hello-ok.auth.scopes` is `[]` (non-local token-only client): chat.*/sessions.* -> FORBIDDEN.
    pub clear_scopes: bool,
    /// `connect` must carry a valid Ed25519 device proof (default true).
    pub require_device: bool,
    /// After `hello-ok`, echo every text/binary frame back verbatim, no JSON parsing.
    pub echo_mode: bool,
    /// With `echo_mode`, a text frame comes back as the payload of a `chat` event
    /// (`{"type":"event","event":"chat","payload":<frame>}`, still without parsing), so a relay
    /// in front takes its event path (sequence numbers, replay buffer) as for a streamed reply.
    pub echo_as_event: bool,
    /// Accept any non-empty `auth.token` (one echo upstream standing in for many users' agents).
    pub any_token: bool,
    /// Interval of the `tick` event and `hello-ok.policy.tickIntervalMs` (default 30 s).
    pub tick_interval: Duration,
    /// Connections that have not completed `connect` within this time are closed 1008 (default 15 s).
    pub handshake_timeout: Duration,
}

impl Default for FakeOpenClawOptions {
    fn default() -> Self {
        Self {
            token: "fake-gateway-token".to_string(),
            reply: Reply::Text("Hello from the fake OpenClaw agent.".to_string()),
            delta_delay: Duration::from_millis(20),
            starting_rejections: 0,
            clear_scopes: false,
            require_device: true,
            echo_mode: false,
            echo_as_event: false,
            any_token: false,
            tick_interval: Duration::from_secs(30),
            handshake_timeout: Duration::from_secs(15),
        }
    }
}

/// `"main"` -> `"agent:main:main"`, `"X"` -> `"agent:main:X"`, `"agent:…"` unchanged.
pub fn canonical_session_key(key: &str) -> String {
    let key = key.trim();
    if key.starts_with("agent:") { key.to_string() } else { format!("agent:main:{key}") }
}

/// Lowercase hex sha256 of the raw 32-byte Ed25519 public key (= `device.id`).
pub fn device_id_for_public_key(raw_public_key: &[u8]) -> String {
    hex::encode(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, raw_public_key).as_ref())
}

/// The v3 device-auth payload string that the client signs (`buildDeviceAuthPayloadV3`).
#[allow(clippy::too_many_arguments)]
pub fn device_auth_payload_v3(
    device_id: &str,
    client_id: &str,
    client_mode: &str,
    role: &str,
    scopes: &[String],
    signed_at_ms: i64,
    token: &str,
    nonce: &str,
    platform: &str,
    device_family: &str,
) -> String {
    let fields = device_auth_fields(device_id, client_id, client_mode, role, scopes, signed_at_ms, token, nonce);
    format!("v3|{fields}|{}|{}", normalize_meta(platform), normalize_meta(device_family))
}

/// What v2 and v3 proofs both sign, after the version tag.
#[allow(clippy::too_many_arguments)]
fn device_auth_fields(
    device_id: &str,
    client_id: &str,
    client_mode: &str,
    role: &str,
    scopes: &[String],
    signed_at_ms: i64,
    token: &str,
    nonce: &str,
) -> String {
    format!("{device_id}|{client_id}|{client_mode}|{role}|{}|{signed_at_ms}|{token}|{nonce}", scopes.join(","))
}

fn normalize_meta(v: &str) -> String {
    v.trim().to_ascii_lowercase()
}

fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

// ---------------------------------------------------------------------------------------------
// Shared state
// ---------------------------------------------------------------------------------------------

enum Out {
    /// A `res` frame (already complete).
    Res(Value),
    /// An event; the per-connection top-level `seq` is added when written.
    Event(String, Value),
    Close(u16, String),
    Drop,
    /// Stop reading and writing (no pongs, no ticks) until dropped or closed.
    Stall,
}

struct ConnEntry {
    tx: mpsc::UnboundedSender<Out>,
    authed: bool,
    can_read: bool,
}

struct StoredMessage {
    role: &'static str,
    text: String,
    timestamp: u64,
    idempotency_key: Option<String>,
}

struct Session {
    session_id: String,
    messages: Vec<StoredMessage>,
    updated_at: u64,
}

impl Session {
    fn new() -> Self {
        Self { session_id: uuid::Uuid::new_v4().to_string(), messages: Vec::new(), updated_at: now_ms() }
    }
}

struct RunEntry {
    session_key: String,
    abort: AbortHandle,
    seq: Arc<AtomicU64>,
    text: Arc<Mutex<String>>,
}

struct Shared {
    token: String,
    delta_delay: Duration,
    starting_rejections: u32,
    clear_scopes: bool,
    require_device: bool,
    echo_mode: bool,
    echo_as_event: bool,
    any_token: bool,
    tick_interval: Duration,
    handshake_timeout: Duration,
    started_at_ms: u64,
    reply: Mutex<Reply>,
    connections_total: AtomicU64,
    handshakes_ok: AtomicU64,
    requests: Mutex<Vec<(String, Value)>>,
    saw_forwarding: AtomicBool,
    saw_origin: AtomicBool,
    next_conn_id: AtomicU64,
    // Lock order: runs -> sessions -> conns.
    conns: Mutex<HashMap<u64, ConnEntry>>,
    sessions: Mutex<HashMap<String, Session>>,
    runs: Mutex<HashMap<String, RunEntry>>,
}

impl Shared {
    fn broadcast(&self, event: &str, payload: Value, needs_read: bool) {
        let conns = lock(&self.conns);
        for c in conns.values() {
            if c.authed && (!needs_read || c.can_read) {
                let _ = c.tx.send(Out::Event(event.to_string(), payload.clone()));
            }
        }
    }

    fn record(&self, method: &str, params: &Value) {
        lock(&self.requests).push((method.to_string(), params.clone()));
    }
}

// ---------------------------------------------------------------------------------------------
// Handle
// ---------------------------------------------------------------------------------------------

/// A running fake gateway. Stops when dropped (or on [`FakeOpenClaw::shutdown`]).
pub struct FakeOpenClaw {
    addr: SocketAddr,
    shared: Arc<Shared>,
    server: JoinHandle<()>,
}

impl FakeOpenClaw {
    /// Binds 127.0.0.1:0 and starts serving. Panics only if the loopback bind fails.
    pub async fn spawn(opts: FakeOpenClawOptions) -> FakeOpenClaw {
        let shared = Arc::new(Shared {
            token: opts.token,
            delta_delay: opts.delta_delay,
            starting_rejections: opts.starting_rejections,
            clear_scopes: opts.clear_scopes,
            require_device: opts.require_device,
            echo_mode: opts.echo_mode,
            echo_as_event: opts.echo_as_event,
            any_token: opts.any_token,
            tick_interval: if opts.tick_interval.is_zero() { Duration::from_secs(30) } else { opts.tick_interval },
            handshake_timeout: opts.handshake_timeout,
            started_at_ms: now_ms(),
            reply: Mutex::new(opts.reply),
            connections_total: AtomicU64::new(0),
            handshakes_ok: AtomicU64::new(0),
            requests: Mutex::new(Vec::new()),
            saw_forwarding: AtomicBool::new(false),
            saw_origin: AtomicBool::new(false),
            next_conn_id: AtomicU64::new(1),
            conns: Mutex::new(HashMap::new()),
            sessions: Mutex::new(HashMap::new()),
            runs: Mutex::new(HashMap::new()),
        });
        let app = Router::new()
            .route("/health", get(health_http))
            .route("/healthz", get(health_http))
            .route("/ready", get(ready_http))
            .route("/readyz", get(ready_http))
            .fallback(ws_handler)
            .with_state(shared.clone());
        let (addr, server) = super::serve_on_loopback(app, "fake openclaw").await;
        FakeOpenClaw { addr, shared, server }
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `ws://127.0.0.1:PORT/`
    pub fn ws_url(&self) -> String {
        format!("ws://{}/", self.addr)
    }

    /// Stops accepting, drops every open connection (no close frame) and cancels running chats.
    /// Idempotent; also called on Drop.
    pub fn shutdown(&self) {
        self.server.abort();
        self.drop_all();
        let mut runs = lock(&self.shared.runs);
        for (_, r) in runs.drain() {
            r.abort.abort();
        }
    }

    /// Sends a close frame with `code`/`reason` on every open connection (e.g. 4001 "gateway auth changed").
    pub fn close_all(&self, code: u16, reason: &str) {
        let conns = lock(&self.shared.conns);
        for c in conns.values() {
            let _ = c.tx.send(Out::Close(code, reason.to_string()));
        }
    }

    /// Drops the TCP connection of every open WebSocket without a close frame.
    pub fn drop_all(&self) {
        let conns = lock(&self.shared.conns);
        for c in conns.values() {
            let _ = c.tx.send(Out::Drop);
        }
    }

    /// Every open connection stops reading and writing (a hung agent), until dropped.
    pub fn stall_all(&self) {
        let conns = lock(&self.shared.conns);
        for c in conns.values() {
            let _ = c.tx.send(Out::Stall);
        }
    }

    /// Changes the reply used by subsequent `chat.send` calls.
    pub fn set_reply(&self, reply: Reply) {
        *lock(&self.shared.reply) = reply;
    }

    /// Accepted WebSocket upgrades so far (403-rejected upgrades are not counted).
    pub fn connections_total(&self) -> u64 {
        self.shared.connections_total.load(Ordering::SeqCst)
    }

    /// Successful `hello-ok` responses so far.
    pub fn handshakes_ok(&self) -> u64 {
        self.shared.handshakes_ok.load(Ordering::SeqCst)
    }

    /// Every `req` frame seen (including `connect`), as (method, params) in arrival order.
    pub fn requests_seen(&self) -> Vec<(String, Value)> {
        lock(&self.shared.requests).clone()
    }

    /// True if any upgrade carried `Origin` or a forwarding header.
    pub fn saw_forbidden_headers(&self) -> bool {
        self.saw_forwarding_headers() || self.saw_origin()
    }

    /// True if any upgrade carried X-Forwarded-*, Forwarded or X-Real-IP (answered 403).
    pub fn saw_forwarding_headers(&self) -> bool {
        self.shared.saw_forwarding.load(Ordering::SeqCst)
    }

    /// True if any upgrade carried `Origin` (closed 1008 "origin not allowed" at connect).
    pub fn saw_origin(&self) -> bool {
        self.shared.saw_origin.load(Ordering::SeqCst)
    }

    /// Currently open WebSocket connections (authenticated or not).
    pub fn open_connections(&self) -> usize {
        lock(&self.shared.conns).len()
    }

    /// Stored transcript of a session as (role, text); `key` is canonicalized.
    pub fn session_messages(&self, key: &str) -> Vec<(String, String)> {
        let sessions = lock(&self.shared.sessions);
        sessions
            .get(&canonical_session_key(key))
            .map(|s| s.messages.iter().map(|m| (m.role.to_string(), m.text.clone())).collect())
            .unwrap_or_default()
    }

    /// Run ids of chats still streaming.
    pub fn active_runs(&self) -> Vec<String> {
        lock(&self.shared.runs).keys().cloned().collect()
    }
}

impl Drop for FakeOpenClaw {
    fn drop(&mut self) {
        self.shutdown();
    }
}

// ---------------------------------------------------------------------------------------------
// HTTP
// ---------------------------------------------------------------------------------------------

async fn health_http() -> Response {
    axum::Json(json!({"ok": true, "status": "live"})).into_response()
}

async fn ready_http() -> Response {
    axum::Json(json!({"ready": true, "failing": []})).into_response()
}

fn is_forwarding_header(name: &str) -> bool {
    name.starts_with("x-forwarded-") || name == "forwarded" || name == "x-real-ip"
}

async fn ws_handler(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    ws: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Response {
    if headers.keys().any(|k| is_forwarding_header(k.as_str())) {
        shared.saw_forwarding.store(true, Ordering::SeqCst);
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
    if has_origin {
        shared.saw_origin.store(true, Ordering::SeqCst);
    }
    let index = shared.connections_total.fetch_add(1, Ordering::SeqCst);
    ws.max_message_size(MAX_PAYLOAD)
        .max_frame_size(MAX_PAYLOAD)
        .on_upgrade(move |socket| handle_socket(shared, socket, index, has_origin))
}

// ---------------------------------------------------------------------------------------------
// Connection
// ---------------------------------------------------------------------------------------------

struct ConnGuard {
    shared: Arc<Shared>,
    id: u64,
}

impl Drop for ConnGuard {
    fn drop(&mut self) {
        lock(&self.shared.conns).remove(&self.id);
    }
}

struct Challenge {
    nonce: String,
    ts: u64,
}

struct ConnCtx {
    shared: Arc<Shared>,
    tx: mpsc::UnboundedSender<Out>,
    scopes: Vec<String>,
    seq: u64,
}

impl ConnCtx {
    fn has_scope(&self, scope: &str) -> bool {
        scopes_allow(&self.scopes, scope)
    }

    fn res_ok(&self, id: &Value, payload: Value) {
        let _ = self.tx.send(Out::Res(json!({"type": "res", "id": id, "ok": true, "payload": payload})));
    }

    fn res_err(&self, id: &Value, error: Value) {
        let _ = self.tx.send(Out::Res(json!({"type": "res", "id": id, "ok": false, "error": error})));
    }
}

fn scopes_allow(scopes: &[String], scope: &str) -> bool {
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
        Out::Stall => Step::Continue,
    }
}

async fn handle_socket(shared: Arc<Shared>, mut socket: WebSocket, index: u64, has_origin: bool) {
    let conn_id = shared.next_conn_id.fetch_add(1, Ordering::SeqCst);
    let (tx, mut rx) = mpsc::unbounded_channel();
    lock(&shared.conns).insert(conn_id, ConnEntry { tx: tx.clone(), authed: false, can_read: false });
    let _guard = ConnGuard { shared: shared.clone(), id: conn_id };
    let mut ctx = ConnCtx { shared: shared.clone(), tx, scopes: Vec::new(), seq: 0 };

    let challenge = Challenge { nonce: uuid::Uuid::new_v4().to_string(), ts: now_ms() };
    let ch = json!({"type": "event", "event": "connect.challenge",
        "payload": {"nonce": challenge.nonce, "ts": challenge.ts, "capabilities": []}});
    if !send_text(&mut socket, &ch).await {
        return;
    }

    // ---- pre-auth phase ----
    let deadline = tokio::time::sleep(shared.handshake_timeout);
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
                        if let Some(c) = lock(&shared.conns).get_mut(&conn_id) {
                            c.authed = true;
                            c.can_read = can_read;
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

    if shared.echo_mode {
        echo_loop(&mut socket, &mut rx, shared.echo_as_event).await;
        return;
    }

    // ---- authenticated phase ----
    let tick_every = shared.tick_interval;
    let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + tick_every, tick_every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            out = rx.recv() => {
                let Some(out) = out else { return };
                if let Out::Stall = out {
                    // Holding the socket without reading it: no pongs, and writes to us back up.
                    while let Some(out) = rx.recv().await {
                        if matches!(out, Out::Drop | Out::Close(..)) {
                            return;
                        }
                    }
                    return;
                }
                if let Step::Stop = write_out(&mut socket, &mut ctx, out).await { return; }
            }
            _ = tick.tick() => {
                let out = Out::Event("tick".to_string(), json!({"ts": now_ms()}));
                if let Step::Stop = write_out(&mut socket, &mut ctx, out).await { return; }
            }
            msg = socket.recv() => {
                match msg {
                    Some(Ok(Message::Text(t))) => handle_frame(&mut ctx, t.as_str()),
                    Some(Ok(Message::Binary(_))) | Some(Ok(Message::Ping(_))) | Some(Ok(Message::Pong(_))) => {}
                    Some(Ok(Message::Close(_))) | Some(Err(_)) | None => return,
                }
            }
        }
    }
}

async fn echo_loop(socket: &mut WebSocket, rx: &mut mpsc::UnboundedReceiver<Out>, as_event: bool) {
    loop {
        tokio::select! {
            out = rx.recv() => match out {
                Some(Out::Close(code, reason)) => { close_socket(socket, code, &reason).await; return; }
                Some(Out::Drop) | None => return,
                Some(_) => {}
            },
            msg = socket.recv() => match msg {
                Some(Ok(Message::Text(text))) if as_event => {
                    let mut event = String::with_capacity(text.len() + 48);
                    event.push_str(r#"{"type":"event","event":"chat","payload":"#);
                    event.push_str(text.as_str());
                    event.push('}');
                    if socket.send(Message::Text(event.into())).await.is_err() { return; }
                }
                Some(Ok(m @ Message::Text(_))) | Some(Ok(m @ Message::Binary(_))) => {
                    if socket.send(m).await.is_err() { return; }
                }
                Some(Ok(Message::Ping(_))) | Some(Ok(Message::Pong(_))) => {}
                Some(Ok(Message::Close(_))) | Some(Err(_)) | None => return,
            },
        }
    }
}

// ---------------------------------------------------------------------------------------------
// connect
// ---------------------------------------------------------------------------------------------

struct Reject {
    res: Option<Value>,
    close_code: u16,
    close_reason: String,
}

fn reject(id: &Value, error: Value, close_code: u16, close_reason: &str) -> Reject {
    Reject {
        res: Some(json!({"type": "res", "id": id, "ok": false, "error": error})),
        close_code,
        close_reason: close_reason.to_string(),
    }
}

fn invalid_params(id: &Value, why: &str) -> Reject {
    let msg = format!("invalid connect params: {why}");
    reject(id, json!({"code": "INVALID_REQUEST", "message": msg}), 1008, &msg)
}

fn device_error(id: &Value, message: &str, code: &str, reason: &str) -> Reject {
    reject(
        id,
        json!({"code": "INVALID_REQUEST", "message": message, "details": {"code": code, "reason": reason}}),
        1008,
        message,
    )
}

fn str_field<'a>(v: &'a Value, key: &str) -> Option<&'a str> {
    v.get(key).and_then(Value::as_str)
}

/// Returns the hello-ok `res` frame and the granted scopes, or a rejection.
fn handle_connect(
    shared: &Shared,
    text: &str,
    challenge: &Challenge,
    index: u64,
    has_origin: bool,
) -> Result<(Value, Vec<String>), Reject> {
    let frame: Value = serde_json::from_str(text).unwrap_or(Value::Null);
    let id = frame.get("id").cloned().unwrap_or(Value::Null);
    let is_req = str_field(&frame, "type") == Some("req");
    let method = str_field(&frame, "method");
    if is_req && let Some(m) = method {
        shared.record(m, frame.get("params").unwrap_or(&Value::Null));
    }
    if !is_req || method != Some("connect") || !(id.is_string() || id.is_number()) {
        let res = if id.is_null() {
            None
        } else {
            Some(json!({"type": "res", "id": id, "ok": false, "error": {
                "code": "INVALID_REQUEST", "message": "invalid handshake: first request must be connect"}}))
        };
        return Err(Reject { res, close_code: 1008, close_reason: "invalid handshake".to_string() });
    }

    if index < u64::from(shared.starting_rejections) {
        return Err(reject(
            &id,
            json!({"code": "UNAVAILABLE", "message": "gateway starting", "retryable": true, "retryAfterMs": 500}),
            1013,
            "gateway starting",
        ));
    }

    let Some(params) = frame.get("params").filter(|p| p.is_object()) else {
        return Err(invalid_params(&id, "params must be an object"));
    };

    // Protocol range must include 4.
    let min = params.get("minProtocol").and_then(Value::as_u64);
    let max = params.get("maxProtocol").and_then(Value::as_u64);
    match (min, max) {
        (Some(min), Some(max)) if min <= PROTOCOL_VERSION && PROTOCOL_VERSION <= max => {}
        (Some(_), Some(_)) => {
            return Err(reject(
                &id,
                json!({"code": "INVALID_REQUEST", "message": "protocol mismatch",
                       "details": {"expectedProtocol": PROTOCOL_VERSION, "minProtocol": min, "maxProtocol": max}}),
                1002,
                "protocol mismatch",
            ));
        }
        _ => {
            return Err(invalid_params(&id, "minProtocol and maxProtocol are required"));
        }
    }

    // client
    let Some(client) = params.get("client").filter(|c| c.is_object()) else {
        return Err(invalid_params(&id, "client is required"));
    };
    let mut client_fields = Vec::new();
    for f in ["id", "version", "platform", "mode"] {
        match str_field(client, f) {
            Some(v) => client_fields.push(v),
            None => return Err(invalid_params(&id, &format!("client.{f} is required"))),
        }
    }
    let (client_id, client_mode, platform) = (client_fields[0], client_fields[3], client_fields[2]);
    if !CLIENT_IDS.contains(&client_id) {
        return Err(invalid_params(&id, &format!("client.id must be one of the known client ids (got {client_id:?})")));
    }
    if !CLIENT_MODES.contains(&client_mode) {
        return Err(invalid_params(&id, &format!("client.mode must be one of the known modes (got {client_mode:?})")));
    }
    let device_family = str_field(client, "deviceFamily").unwrap_or("");

    let role = match params.get("role") {
        None => "operator",
        Some(Value::String(r)) if r == "operator" || r == "node" => r.as_str(),
        Some(_) => return Err(invalid_params(&id, "role must be \"operator\" or \"node\"")),
    };
    let scopes: Vec<String> = match params.get("scopes") {
        None => Vec::new(),
        Some(Value::Array(a)) => {
            let mut out = Vec::new();
            for s in a {
                match s.as_str() {
                    Some(s) if OPERATOR_SCOPES.contains(&s) => out.push(s.to_string()),
                    _ => return Err(invalid_params(&id, &format!("unknown scope {s}"))),
                }
            }
            out
        }
        Some(_) => return Err(invalid_params(&id, "scopes must be an array")),
    };

    if has_origin {
        return Err(reject(
            &id,
            json!({"code": "INVALID_REQUEST",
                   "message": "origin not allowed (open the Control UI from the gateway host or allow it in gateway.controlUi.allowedOrigins)",
                   "details": {"code": "CONTROL_UI_ORIGIN_NOT_ALLOWED", "reason": "origin not allowed"}}),
            1008,
            "origin not allowed",
        ));
    }

    // auth
    let auth = params.get("auth").cloned().unwrap_or(Value::Null);
    let token = str_field(&auth, "token").or_else(|| str_field(&auth, "password"));
    let device_token = str_field(&auth, "deviceToken");
    let device = params.get("device").filter(|d| !d.is_null());
    let auth_method = match (token, device_token) {
        (Some(t), _) => {
            let accepted = t == shared.token || (shared.any_token && !t.is_empty());
            if !accepted {
                return Err(reject(
                    &id,
                    json!({"code": "INVALID_REQUEST",
                           "message": "unauthorized: gateway token mismatch (provide gateway auth token)",
                           "details": {"code": "AUTH_TOKEN_MISMATCH", "authReason": "token_mismatch",
                                       "canRetryWithDeviceToken": false,
                                       "recommendedNextStep": "update_auth_credentials"}}),
                    1008,
                    "unauthorized: gateway token mismatch",
                ));
            }
            "token"
        }
        (None, Some(dt)) => {
            if dt != FAKE_DEVICE_TOKEN || device.is_none() {
                return Err(reject(
                    &id,
                    json!({"code": "INVALID_REQUEST", "message": "unauthorized: device token mismatch",
                           "details": {"code": "AUTH_DEVICE_TOKEN_MISMATCH", "authReason": "device_token_mismatch",
                                       "canRetryWithDeviceToken": false,
                                       "recommendedNextStep": "update_auth_credentials"}}),
                    1008,
                    "unauthorized: device token mismatch",
                ));
            }
            "device-token"
        }
        (None, None) => {
            return Err(reject(
                &id,
                json!({"code": "INVALID_REQUEST",
                       "message": "unauthorized: gateway token missing (provide gateway auth token)",
                       "details": {"code": "AUTH_TOKEN_MISSING", "authReason": "token_missing",
                                   "canRetryWithDeviceToken": false,
                                   "recommendedNextStep": "update_auth_credentials"}}),
                1008,
                "unauthorized: gateway token missing",
            ));
        }
    };
    let signed_token = token.or(device_token).or_else(|| str_field(&auth, "bootstrapToken")).unwrap_or("");

    // device proof
    match device {
        Some(d) => verify_device(
            &id,
            d,
            challenge,
            client_id,
            client_mode,
            role,
            &scopes,
            signed_token,
            platform,
            device_family,
        )?,
        None if shared.require_device => {
            return Err(reject(
                &id,
                json!({"code": "NOT_PAIRED", "message": "device identity required",
                       "details": {"code": "DEVICE_IDENTITY_REQUIRED", "reason": "device-identity-required"}}),
                1008,
                "device identity required",
            ));
        }
        None => {}
    }

    let granted: Vec<String> = if shared.clear_scopes { Vec::new() } else { scopes };
    let now = now_ms();
    let mut auth_out = json!({"method": auth_method, "role": role, "scopes": granted, "issuedAtMs": now});
    if device.is_some() {
        auth_out["deviceToken"] = json!(FAKE_DEVICE_TOKEN);
    }
    let payload = json!({
        "type": "hello-ok",
        "protocol": PROTOCOL_VERSION,
        "server": {"version": SERVER_VERSION, "connId": uuid::Uuid::new_v4().to_string()},
        "features": {"methods": METHODS, "events": EVENTS, "capabilities": []},
        "snapshot": {
            "presence": [],
            "health": {"ok": true},
            "stateVersion": {"presence": 0, "health": 0},
            "uptimeMs": now.saturating_sub(shared.started_at_ms),
            "sessionDefaults": {"defaultAgentId": "main", "mainKey": "main", "mainSessionKey": "agent:main:main",
                                "scope": "per-sender", "modelConfigured": true, "ownership": "sole",
                                "selectionRequired": false}
        },
        "auth": auth_out,
        "policy": {"maxPayload": MAX_PAYLOAD, "maxBufferedBytes": MAX_BUFFERED_BYTES,
                   "tickIntervalMs": shared.tick_interval.as_millis() as u64}
    });
    Ok((json!({"type": "res", "id": id, "ok": true, "payload": payload}), granted))
}

fn decode_b64url(s: &str) -> Option<Vec<u8>> {
    let s = s.trim().trim_end_matches('=');
    base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(s).ok()
}

#[allow(clippy::too_many_arguments)]
fn verify_device(
    id: &Value,
    d: &Value,
    challenge: &Challenge,
    client_id: &str,
    client_mode: &str,
    role: &str,
    scopes: &[String],
    token: &str,
    platform: &str,
    device_family: &str,
) -> Result<(), Reject> {
    let nonce = str_field(d, "nonce").unwrap_or("");
    if nonce.is_empty() {
        return Err(device_error(id, "device nonce required", "DEVICE_AUTH_NONCE_REQUIRED", "device-nonce-missing"));
    }
    if nonce != challenge.nonce {
        return Err(device_error(id, "device nonce mismatch", "DEVICE_AUTH_NONCE_MISMATCH", "device-nonce-mismatch"));
    }
    let pk_invalid =
        || device_error(id, "device public key invalid", "DEVICE_AUTH_PUBLIC_KEY_INVALID", "device-public-key");
    let Some(public_key) = str_field(d, "publicKey").and_then(decode_b64url) else {
        return Err(pk_invalid());
    };
    if public_key.len() != 32 {
        return Err(pk_invalid());
    }
    let device_id = str_field(d, "id").unwrap_or("");
    if device_id != device_id_for_public_key(&public_key) {
        return Err(device_error(
            id,
            "device identity mismatch",
            "DEVICE_AUTH_DEVICE_ID_MISMATCH",
            "device-id-mismatch",
        ));
    }
    let expired =
        || device_error(id, "device signature expired", "DEVICE_AUTH_SIGNATURE_EXPIRED", "device-signature-stale");
    let Some(signed_at) = d.get("signedAt").and_then(Value::as_i64) else {
        return Err(expired());
    };
    let now = now_ms() as i64;
    if (now - signed_at).abs() > SIGNATURE_SKEW_MS || signed_at != challenge.ts as i64 {
        return Err(expired());
    }
    let sig_invalid =
        || device_error(id, "device signature invalid", "DEVICE_AUTH_SIGNATURE_INVALID", "device-signature");
    let Some(signature) = str_field(d, "signature").and_then(decode_b64url) else {
        return Err(sig_invalid());
    };
    let key = aws_lc_rs::signature::UnparsedPublicKey::new(&aws_lc_rs::signature::ED25519, &public_key);
    let v3 = device_auth_payload_v3(
        device_id,
        client_id,
        client_mode,
        role,
        scopes,
        signed_at,
        token,
        nonce,
        platform,
        device_family,
    );
    if key.verify(v3.as_bytes(), &signature).is_ok() {
        return Ok(());
    }
    let v2 =
        format!("v2|{}", device_auth_fields(device_id, client_id, client_mode, role, scopes, signed_at, token, nonce));
    if key.verify(v2.as_bytes(), &signature).is_ok() {
        return Ok(());
    }
    Err(sig_invalid())
}

// ---------------------------------------------------------------------------------------------
// Requests after hello-ok
// ---------------------------------------------------------------------------------------------

fn invalid_request(message: impl Into<String>) -> Value {
    json!({"code": "INVALID_REQUEST", "message": message.into()})
}

fn missing_scope(scope: &str) -> Value {
    json!({"code": "FORBIDDEN", "message": format!("missing scope: {scope}"),
           "details": {"code": "MISSING_SCOPE", "missingScope": scope, "requiredScopes": [scope]}})
}

fn handle_frame(ctx: &mut ConnCtx, text: &str) {
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
    ctx.shared.record(method, &params);

    let required = match method {
        "chat.history" | "sessions.list" => Some(SCOPE_READ),
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
        "chat.send" => chat_send(ctx, &id, &params),
        "chat.history" => chat_history(ctx, &id, &params),
        "chat.abort" => chat_abort(ctx, &id, &params),
        "sessions.list" => sessions_list(ctx, &id),
        "sessions.delete" => sessions_delete_or_reset(ctx, &id, &params, true),
        "sessions.reset" => sessions_delete_or_reset(ctx, &id, &params, false),
        "connect" => ctx.res_err(&id, invalid_request("already connected")),
        other => ctx.res_err(&id, invalid_request(format!("unknown method: {other}"))),
    }
}

fn required_str<'a>(ctx: &ConnCtx, id: &Value, method: &str, params: &'a Value, key: &str) -> Option<&'a str> {
    match str_field(params, key) {
        Some(s) if !s.is_empty() => Some(s),
        _ => {
            ctx.res_err(id, invalid_request(format!("invalid {method} params: must have required property '{key}'")));
            None
        }
    }
}

fn text_message(role: &str, text: &str, timestamp: u64) -> Value {
    json!({"role": role, "content": [{"type": "text", "text": text}], "timestamp": timestamp})
}

fn chat_send(ctx: &ConnCtx, id: &Value, params: &Value) {
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
        let now = now_ms();
        s.messages.push(StoredMessage {
            role: "user",
            text: message.to_string(),
            timestamp: now,
            idempotency_key: Some(run_id.clone()),
        });
        s.updated_at = now;
    }
    ctx.res_ok(id, json!({"runId": run_id, "status": "started"}));

    let outcome = match lock(&shared.reply).clone() {
        Reply::Text(t) => Ok(t),
        Reply::Echo => Ok(message.to_string()),
        Reply::Error(e) => Err(e),
    };
    let seq = Arc::new(AtomicU64::new(0));
    let text = Arc::new(Mutex::new(String::new()));
    // The task cannot observe the run map before we insert: we hold the lock across spawn.
    let handle =
        tokio::spawn(run_chat(shared.clone(), run_id.clone(), canonical.clone(), outcome, seq.clone(), text.clone()));
    runs.insert(run_id, RunEntry { session_key: canonical, abort: handle.abort_handle(), seq, text });
}

fn next_seq(seq: &AtomicU64) -> u64 {
    seq.fetch_add(1, Ordering::SeqCst) + 1
}

fn agent_event(run_id: &str, session_key: &str, seq: u64, data: Value) -> Value {
    json!({"runId": run_id, "stream": "lifecycle", "data": data, "sessionKey": session_key,
           "agentId": "main", "seq": seq, "ts": now_ms(), "isHeartbeat": false})
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
            for chunk in super::split_words(&text) {
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
                s.messages.push(StoredMessage {
                    role: "assistant",
                    text: text.clone(),
                    timestamp: now,
                    idempotency_key: None,
                });
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
fn abort_runs(shared: &Shared, session_key: &str, run_id: Option<&str>, before_events: impl FnOnce(&[String])) {
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
                s.messages.push(StoredMessage {
                    role: "assistant",
                    text: partial,
                    timestamp: now_ms(),
                    idempotency_key: None,
                });
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

fn chat_abort(ctx: &ConnCtx, id: &Value, params: &Value) {
    let Some(session_key) = required_str(ctx, id, "chat.abort", params, "sessionKey") else {
        return;
    };
    let canonical = canonical_session_key(session_key);
    let run_id = str_field(params, "runId");
    abort_runs(&ctx.shared, &canonical, run_id, |ids| {
        ctx.res_ok(id, json!({"ok": true, "aborted": !ids.is_empty(), "runIds": ids}));
    });
}

fn chat_history(ctx: &ConnCtx, id: &Value, params: &Value) {
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

fn sessions_list(ctx: &ConnCtx, id: &Value) {
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

fn sessions_delete_or_reset(ctx: &ConnCtx, id: &Value, params: &Value, delete: bool) {
    let method = if delete { "sessions.delete" } else { "sessions.reset" };
    let Some(key) = required_str(ctx, id, method, params, "key") else {
        return;
    };
    let canonical = canonical_session_key(key);
    abort_runs(&ctx.shared, &canonical, None, |_| {});
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

    #[test]
    fn words_keep_whitespace() {
        assert_eq!(super::super::split_words("Hello  big world"), vec!["Hello  ", "big ", "world"]);
        assert_eq!(super::super::split_words(""), Vec::<String>::new());
        assert_eq!(super::super::split_words("a b").concat(), "a b");
    }
}
