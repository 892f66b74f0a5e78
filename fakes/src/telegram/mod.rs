//! A stateful fake of the Telegram Bot API (`/bot<token>/<method>`), enough for Roost's token
//! check and for a real OpenClaw polling through `apiRoot`: bots with valid, unknown and revoked
//! tokens, `getUpdates` long polls with offsets (a newer poll ends an older one with 409, as
//! Telegram does), `sendMessage` recorded for the test to read, and injected 429s and hangs.

mod api;

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};
use tokio::sync::Notify;
use tokio::task::JoinHandle;

/// A failure the next matching call gets instead of its answer.
#[derive(Debug, Clone)]
pub enum Fault {
    /// 429 `Too Many Requests: retry after N` with `parameters.retry_after`.
    TooManyRequests { retry_after: u64 },
    /// No answer for this long (longer than the caller's timeout: a timeout).
    Hang(Duration),
    /// A 5xx with Telegram's error body.
    ServerError,
}

#[derive(Debug, Clone)]
pub struct Bot {
    pub id: i64,
    pub username: String,
    pub first_name: String,
    pub revoked: bool,
    pub webhook_url: String,
}

#[derive(Default)]
pub(crate) struct Inner {
    pub bots: HashMap<String, Bot>,
    /// Unconfirmed updates per token, oldest first.
    pub updates: HashMap<String, VecDeque<Value>>,
    pub next_update_id: i64,
    pub next_message_id: i64,
    /// (token, method, params) of every call with a known token, in order.
    pub calls: Vec<(String, String, Value)>,
    /// Faults for the next calls of a method (`"*"`: any method), in order.
    pub faults: VecDeque<(String, Fault)>,
    /// Which `getUpdates` of a token is the newest (older ones end with 409).
    pub poll_generation: HashMap<String, u64>,
    /// `getUpdates` calls waiting right now, per token.
    pub polls_waiting: HashMap<String, usize>,
}

pub(crate) struct Shared {
    pub inner: Mutex<Inner>,
    pub changed: Notify,
}

pub(crate) type State = Arc<Shared>;

pub struct FakeTelegram {
    state: State,
    addr: SocketAddr,
    server: JoinHandle<()>,
}

/// The state, for the control routes.
pub(crate) struct Handle(pub State);

impl Handle {
    pub fn deliver_dm(&self, token: &str, from_id: i64, first_name: &str, text: &str) -> i64 {
        deliver_dm(&self.0, token, from_id, first_name, text)
    }

    pub fn sent_messages(&self, token: &str) -> Vec<Value> {
        sent_messages(&self.0, token)
    }
}

fn deliver_dm(state: &State, token: &str, from_id: i64, first_name: &str, text: &str) -> i64 {
    let update_id = {
        let mut inner = state.inner.lock().unwrap();
        let update_id = inner.next_update_id;
        inner.next_update_id += 1;
        let message_id = inner.next_message_id;
        inner.next_message_id += 1;
        let now = unix_now();
        let user = json!({ "id": from_id, "is_bot": false, "first_name": first_name, "language_code": "en" });
        let update = json!({
            "update_id": update_id,
            "message": {
                "message_id": message_id, "date": now, "from": user,
                "chat": { "id": from_id, "type": "private", "first_name": first_name },
                "text": text,
            },
        });
        inner.updates.entry(token.to_string()).or_default().push_back(update);
        update_id
    };
    state.changed.notify_waiters();
    update_id
}

fn sent_messages(state: &State, token: &str) -> Vec<Value> {
    let inner = state.inner.lock().unwrap();
    inner.calls.iter().filter(|(t, m, _)| t == token && m == "sendMessage").map(|(_, _, p)| p.clone()).collect()
}

impl FakeTelegram {
    pub async fn spawn() -> Self {
        let state = Arc::new(Shared {
            inner: Mutex::new(Inner { next_update_id: 700_000, next_message_id: 1, ..Inner::default() }),
            changed: Notify::new(),
        });
        let (addr, server) = crate::serve_on_loopback(api::router(state.clone()), "fake telegram").await;
        Self { state, addr, server }
    }

    /// The Bot API root (`http://127.0.0.1:PORT`), without `/bot<token>`.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Registers a bot and returns its token (`<id>:<35 chars>`, the shape real ones have).
    pub fn add_bot(&self, username: &str) -> String {
        let mut inner = self.state.inner.lock().unwrap();
        let id = 6_000_000_000 + inner.bots.len() as i64 * 7 + 1;
        let secret = format!("{}{}", uuid::Uuid::new_v4().simple(), uuid::Uuid::new_v4().simple());
        let token = format!("{id}:A{}", &secret[..34]);
        inner.bots.insert(
            token.clone(),
            Bot {
                id,
                username: username.to_string(),
                first_name: username.trim_end_matches("_bot").to_string(),
                revoked: false,
                webhook_url: String::new(),
            },
        );
        token
    }

    /// From now on the token answers 401, as after `/revoke` in BotFather.
    pub fn revoke(&self, token: &str) {
        if let Some(bot) = self.state.inner.lock().unwrap().bots.get_mut(token) {
            bot.revoked = true;
        }
        self.state.changed.notify_waiters();
    }

    pub fn set_webhook(&self, token: &str, url: &str) {
        if let Some(bot) = self.state.inner.lock().unwrap().bots.get_mut(token) {
            bot.webhook_url = url.to_string();
        }
    }

    /// Queues a private message from user `from_id` to the bot; returns its `update_id`.
    pub fn deliver_dm(&self, token: &str, from_id: i64, first_name: &str, text: &str) -> i64 {
        deliver_dm(&self.state, token, from_id, first_name, text)
    }

    /// The params of every `sendMessage` the bot made, in order.
    pub fn sent_messages(&self, token: &str) -> Vec<Value> {
        sent_messages(&self.state, token)
    }

    /// Every call made with this token: (method, params).
    pub fn calls(&self, token: &str) -> Vec<(String, Value)> {
        let inner = self.state.inner.lock().unwrap();
        inner.calls.iter().filter(|(t, _, _)| t == token).map(|(_, m, p)| (m.clone(), p.clone())).collect()
    }

    /// How many `getUpdates` calls this token has had.
    pub fn polls(&self, token: &str) -> usize {
        self.calls(token).iter().filter(|(m, _)| m == "getUpdates").count()
    }

    /// `getUpdates` calls open right now (a poller is attached).
    pub fn polls_waiting(&self, token: &str) -> usize {
        self.state.inner.lock().unwrap().polls_waiting.get(token).copied().unwrap_or(0)
    }

    /// Every call with any token, in order, as (token, method): for scanning what was sent.
    pub fn all_calls(&self) -> Vec<(String, String)> {
        self.state.inner.lock().unwrap().calls.iter().map(|(t, m, _)| (t.clone(), m.clone())).collect()
    }

    /// The next call of `method` (`"*"`: of any method) gets `fault` instead of its answer.
    pub fn fail_next(&self, method: &str, fault: Fault) {
        self.state.inner.lock().unwrap().faults.push_back((method.to_string(), fault));
    }
}

impl Drop for FakeTelegram {
    fn drop(&mut self) {
        self.server.abort();
    }
}

pub(crate) fn unix_now() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64)
}
