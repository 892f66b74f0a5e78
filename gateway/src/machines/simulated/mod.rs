//! The simulated agent behind `--agent-provider fake`: an in-process OpenClaw gateway
//! WebSocket (protocol v4), so the UI can be tried without installing OpenClaw.
//!
//! Speaks the frames described in `shared/research/openclaw-protocol.md` (§1, §2, §5):
//! `connect.challenge` -> `connect` req (token + Ed25519 device proof, v3 payload) -> `hello-ok`,
//! then `chat.send` / `chat.history` / `chat.abort` / `sessions.*` / `health`, with `chat` and
//! `agent` events broadcast to every authenticated connection that has read scope.
//!
//! Failure injection is not here: the test doubles in the `fakes` crate add it through
//! [`Hooks`].

pub mod backup;
mod channels;
mod chat;
mod connection;
mod device_proof;
mod handshake;
mod hooks;
mod provider;
mod requests;
mod sessions;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::routing::get;
use serde_json::Value;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

pub use channels::Channels;
pub use chat::split_words;
pub use hooks::{Hooks, Refusal};
pub use provider::SimulatedProvider;

use chat::RunEntry;
use sessions::Session;

/// Interval of the `tick` event and `hello-ok.policy.tickIntervalMs`.
const TICK_INTERVAL: Duration = Duration::from_secs(30);
/// Connections that have not completed `connect` within this time are closed 1008.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(15);

/// What the simulated agent answers to `chat.send`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reply {
    /// Streamed as one `chat` delta per word (whitespace kept), then `final`.
    Text(String),
    /// Reply with the user's own message text (streamed like `Text`).
    Echo,
    /// A `chat` event with `state:"error"` and this `errorMessage` (no deltas).
    Error(String),
}

/// Options for [`SimulatedAgent::spawn`].
#[derive(Clone, Debug)]
pub struct Options {
    /// Shared secret expected in `connect.params.auth.token` (or `auth.password`).
    pub token: String,
    pub reply: Reply,
    /// Sleep before each streamed delta (default 20 ms).
    pub delta_delay: Duration,
    /// After `hello-ok`, every text frame comes back unparsed as the payload of a `chat` event
    /// (`{"type":"event","event":"chat","payload":<frame>}`), binary frames verbatim: the
    /// benchmarks' agent, which costs the relay in front what a streamed reply costs.
    pub echo: bool,
    /// The chats to start with: a restarted agent keeps its transcripts, as a real one does.
    pub transcripts: Transcripts,
    /// The chat channels connected (kept by the provider across stops, like transcripts).
    pub channels: Channels,
}

/// An agent's chats, kept by its provider across stops and starts.
#[derive(Clone, Default)]
pub struct Transcripts(Arc<Mutex<HashMap<String, Session>>>);

impl std::fmt::Debug for Transcripts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Transcripts").field("chats", &lock(&self.0).len()).finish()
    }
}

impl Default for Options {
    fn default() -> Self {
        Self {
            token: "simulated-gateway-token".to_string(),
            reply: Reply::Text("Hello from the simulated OpenClaw agent.".to_string()),
            delta_delay: Duration::from_millis(20),
            echo: false,
            transcripts: Transcripts::default(),
            channels: Channels::default(),
        }
    }
}

fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// What a connection's writer is asked to do.
enum Out {
    /// A `res` frame (already complete).
    Res(Value),
    /// An event; the per-connection top-level `seq` is added when written.
    Event(String, Value),
    Close(u16, String),
    Drop,
}

struct ConnEntry {
    tx: mpsc::UnboundedSender<Out>,
    authed: bool,
    can_read: bool,
    /// Declared `caps:["tool-events"]` in `connect`: only such connections hear tool streams.
    tool_events: bool,
}

struct Shared {
    token: String,
    delta_delay: Duration,
    echo: bool,
    hooks: Arc<dyn Hooks>,
    started_at_ms: u64,
    reply: Mutex<Reply>,
    connections_total: AtomicU64,
    handshakes_ok: AtomicU64,
    next_conn_id: AtomicU64,
    // Lock order: runs -> sessions -> conns.
    conns: Mutex<HashMap<u64, ConnEntry>>,
    sessions: Arc<Mutex<HashMap<String, Session>>>,
    runs: Mutex<HashMap<String, RunEntry>>,
    channels: Channels,
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

    /// An `agent` event of stream `tool`: like the real gateway, only to connections that
    /// declared the `tool-events` capability.
    fn broadcast_tool(&self, payload: Value) {
        for c in lock(&self.conns).values() {
            if c.authed && c.can_read && c.tool_events {
                let _ = c.tx.send(Out::Event("agent".to_string(), payload.clone()));
            }
        }
    }

    fn send_all(&self, out: impl Fn() -> Out) {
        for c in lock(&self.conns).values() {
            let _ = c.tx.send(out());
        }
    }
}

/// A running simulated agent. Stops when dropped (or on [`SimulatedAgent::shutdown`]).
pub struct SimulatedAgent {
    addr: SocketAddr,
    shared: Arc<Shared>,
    server: JoinHandle<()>,
}

impl SimulatedAgent {
    /// Binds 127.0.0.1:0 and starts serving.
    pub async fn spawn(opts: Options) -> std::io::Result<SimulatedAgent> {
        Self::spawn_with_hooks(opts, Arc::new(hooks::NoHooks)).await
    }

    /// Like [`SimulatedAgent::spawn`], with `hooks` consulted at every step they cover.
    pub async fn spawn_with_hooks(opts: Options, hooks: Arc<dyn Hooks>) -> std::io::Result<SimulatedAgent> {
        let shared = Arc::new(Shared {
            token: opts.token,
            delta_delay: opts.delta_delay,
            echo: opts.echo,
            hooks,
            started_at_ms: now_ms(),
            reply: Mutex::new(opts.reply),
            connections_total: AtomicU64::new(0),
            handshakes_ok: AtomicU64::new(0),
            next_conn_id: AtomicU64::new(1),
            conns: Mutex::new(HashMap::new()),
            sessions: opts.transcripts.0,
            channels: opts.channels,
            runs: Mutex::new(HashMap::new()),
        });
        let app = Router::new()
            .route("/health", get(connection::health_http))
            .route("/healthz", get(connection::health_http))
            .route("/ready", get(connection::ready_http))
            .route("/readyz", get(connection::ready_http))
            // What a Fly machine's sidecar (`roost-agent`) answers readiness on.
            .route("/roost/ready", get(connection::ready_http))
            .fallback(connection::ws_handler)
            .with_state(shared.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(SimulatedAgent { addr, shared, server })
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

    /// Sends a close frame with `code`/`reason` on every open connection (as OpenClaw closes
    /// with 4001 "gateway auth changed" when its configuration changes).
    pub fn close_all(&self, code: u16, reason: &str) {
        self.shared.send_all(|| Out::Close(code, reason.to_string()));
    }

    /// Drops the TCP connection of every open WebSocket without a close frame.
    pub fn drop_all(&self) {
        self.shared.send_all(|| Out::Drop);
    }

    /// Changes the reply used by subsequent `chat.send` calls.
    pub fn set_reply(&self, reply: Reply) {
        *lock(&self.shared.reply) = reply;
    }

    /// Successful `hello-ok` responses so far.
    pub fn handshakes_ok(&self) -> u64 {
        self.shared.handshakes_ok.load(Ordering::SeqCst)
    }

    /// Currently open WebSocket connections (authenticated or not).
    pub fn open_connections(&self) -> usize {
        lock(&self.shared.conns).len()
    }
}

impl Drop for SimulatedAgent {
    fn drop(&mut self) {
        self.shutdown();
    }
}
