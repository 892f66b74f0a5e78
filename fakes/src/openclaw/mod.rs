//! A fake OpenClaw gateway for tests: the gateway's simulated agent
//! (`gateway::machines::simulated`), plus the failures a real OpenClaw produces and a record
//! of what it was sent.

mod faults;
mod front;

use std::net::SocketAddr;
use std::sync::Arc;

use gateway::machines::simulated::{Options, SimulatedAgent};
use serde_json::Value;

pub use gateway::machines::simulated::Reply;

use faults::Faults;
use front::Front;

/// Options for [`FakeOpenClaw::spawn`].
#[derive(Clone, Debug)]
pub struct FakeOpenClawOptions {
    /// Shared secret expected in `connect.params.auth.token` (or `auth.password`).
    pub token: String,
    pub reply: Reply,
    /// Every text frame after `hello-ok` comes back as the payload of a `chat` event.
    pub echo: bool,
    /// The first N accepted WebSocket connections get `UNAVAILABLE` + close 1013 "gateway starting".
    pub starting_rejections: u32,
    /// `hello-ok.auth.scopes` is `[]` (non-local token-only client): chat.*/sessions.* -> FORBIDDEN.
    pub clear_scopes: bool,
    /// Accept any non-empty `auth.token` (one agent standing in for many users' agents).
    pub any_token: bool,
}

impl Default for FakeOpenClawOptions {
    fn default() -> Self {
        let simulated = Options::default();
        Self {
            token: "fake-gateway-token".to_string(),
            reply: simulated.reply,
            echo: false,
            starting_rejections: 0,
            clear_scopes: false,
            any_token: false,
        }
    }
}

/// A running fake gateway. Stops when dropped (or on [`FakeOpenClaw::shutdown`]).
pub struct FakeOpenClaw {
    agent: SimulatedAgent,
    faults: Arc<Faults>,
    front: Front,
}

impl FakeOpenClaw {
    /// Binds 127.0.0.1:0 and starts serving. Panics only if the loopback bind fails.
    pub async fn spawn(opts: FakeOpenClawOptions) -> FakeOpenClaw {
        let faults = Arc::new(Faults::new(opts.starting_rejections, opts.clear_scopes, opts.any_token));
        let simulated = Options { token: opts.token, reply: opts.reply, echo: opts.echo, ..Options::default() };
        let agent = SimulatedAgent::spawn_with_hooks(simulated, faults.clone())
            .await
            .unwrap_or_else(|e| panic!("fake openclaw: bind 127.0.0.1:0: {e}"));
        let front = Front::spawn(agent.addr()).await;
        FakeOpenClaw { agent, faults, front }
    }

    pub fn addr(&self) -> SocketAddr {
        self.front.addr()
    }

    /// `ws://127.0.0.1:PORT/`
    pub fn ws_url(&self) -> String {
        format!("ws://{}/", self.addr())
    }

    /// Stops accepting, drops every open connection (no close frame) and cancels running chats.
    /// Idempotent; also called on Drop.
    pub fn shutdown(&self) {
        self.front.shutdown();
        self.agent.shutdown();
    }

    /// Sends a close frame with `code`/`reason` on every open connection (e.g. 4001 "gateway auth changed").
    pub fn close_all(&self, code: u16, reason: &str) {
        self.agent.close_all(code, reason);
    }

    /// Drops the TCP connection of every open WebSocket without a close frame.
    pub fn drop_all(&self) {
        self.front.cut_all();
        self.agent.drop_all();
    }

    /// Every open connection stops reading and writing (a hung agent: no pongs, writes to it
    /// back up), until dropped.
    pub fn stall_all(&self) {
        self.front.stall_all();
    }

    /// Changes the reply used by subsequent `chat.send` calls.
    pub fn set_reply(&self, reply: Reply) {
        self.agent.set_reply(reply);
    }

    /// Successful `hello-ok` responses so far.
    pub fn handshakes_ok(&self) -> u64 {
        self.agent.handshakes_ok()
    }

    /// Currently open WebSocket connections (authenticated or not).
    pub fn open_connections(&self) -> usize {
        self.agent.open_connections()
    }

    /// Every `req` frame seen (including `connect`), as (method, params) in arrival order.
    pub fn requests_seen(&self) -> Vec<(String, Value)> {
        self.faults.requests()
    }

    /// True if any upgrade carried `Origin` or a forwarding header.
    pub fn saw_forbidden_headers(&self) -> bool {
        self.faults.saw_forwarding_headers() || self.faults.saw_origin()
    }
}

impl Drop for FakeOpenClaw {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// The bench's upstream: one echoing agent that takes any user's token, with nothing in front
/// of it (its cost is the baseline the relay is measured against).
pub async fn echo_upstream(token: &str) -> std::io::Result<SimulatedAgent> {
    let options = Options { token: token.to_string(), echo: true, ..Options::default() };
    SimulatedAgent::spawn_with_hooks(options, Arc::new(Faults::new(0, false, true))).await
}
