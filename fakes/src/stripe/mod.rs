//! A stateful fake of the Stripe API for the calls Roost makes: customers, Checkout Sessions,
//! Billing Portal sessions, subscriptions and invoices, with ids in Stripe's shapes. It reads
//! form-encoded requests and records them, honours `Idempotency-Key` as Stripe does (a repeated
//! key replays the first answer), injects 402, 429, 5xx and timeouts, and drives what a customer
//! and Stripe's clock do: complete a Checkout, renew, fail a payment, change a price, cancel.
//! Each of those produces the events Stripe would, which [`FakeStripe::deliver`] signs exactly
//! like Stripe and POSTs to Roost's `/webhooks/stripe`, in any order and as often as asked.

mod api;
mod objects;

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use aws_lc_rs::hmac;
use axum::Router;
use axum::extract::DefaultBodyLimit;
use serde_json::{Value, json};
use tokio::task::JoinHandle;

/// The API version the fake's events carry (async-stripe rc.10's).
pub const API_VERSION: &str = "2026-09-30.endive";

const DAY: i64 = 86_400;
/// A month of the fake's subscriptions.
pub const PERIOD_SECS: i64 = 30 * DAY;

pub struct FakeStripeOptions {
    pub secret_key: String,
    pub webhook_secret: String,
    /// Stripe's clock for object timestamps and periods (not for signatures, which use the
    /// real time as Stripe's do). Two fakes with the same `now` running the same script
    /// produce the same ids and objects.
    pub now: i64,
}

/// A failure the next matching request gets instead of its answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Fault {
    /// Stripe's error JSON with this status: 402 a card error, 429 a rate limit, 5xx an API
    /// error (with `Stripe-Should-Retry: true`).
    Status(u16),
    /// Accepts the request and answers nothing for a minute.
    Timeout,
}

/// One request as the fake saw it.
#[derive(Clone, Debug)]
pub struct RecordedRequest {
    pub method: String,
    pub path: String,
    /// Decoded query pairs (`expand[]`, `customer`, …).
    pub query: Vec<(String, String)>,
    /// Header names are lowercase.
    pub headers: Vec<(String, String)>,
    /// The decoded form pairs of a POST, in order (`line_items[0][price]`, `metadata[user_id]`, …).
    pub form: Vec<(String, String)>,
}

impl RecordedRequest {
    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers.iter().find(|(k, _)| *k == name).map(|(_, v)| v.as_str())
    }

    pub fn field(&self, name: &str) -> Option<&str> {
        self.form.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }
}

/// An event as Stripe would send it: its id, type and the exact body.
#[derive(Clone, Debug)]
pub struct Event {
    pub id: String,
    pub kind: String,
    pub body: String,
}

#[derive(Default)]
pub(crate) struct State {
    pub(crate) counter: u64,
    pub(crate) now: i64,
    pub(crate) customers: BTreeMap<String, Value>,
    pub(crate) sessions: BTreeMap<String, Value>,
    pub(crate) subscriptions: BTreeMap<String, Value>,
    pub(crate) invoices: BTreeMap<String, Value>,
    pub(crate) portal_sessions: BTreeMap<String, Value>,
    pub(crate) charges: BTreeMap<String, Value>,
    pub(crate) disputes: BTreeMap<String, Value>,
    pub(crate) payment_intents: BTreeMap<String, Value>,
    /// Key → (the request's method, path and form; status; body).
    pub(crate) idempotency: HashMap<String, (String, u16, Value)>,
    pub(crate) events: Vec<Event>,
}

pub(crate) struct Shared {
    pub(crate) secret_key: String,
    pub(crate) state: Mutex<State>,
    pub(crate) faults: Mutex<VecDeque<(String, Fault)>>,
    pub(crate) requests: Mutex<Vec<RecordedRequest>>,
}

pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

pub struct FakeStripe {
    addr: SocketAddr,
    shared: Arc<Shared>,
    webhook_secret: String,
    webhook_url: Mutex<Option<String>>,
    http: reqwest::Client,
    server: JoinHandle<()>,
}

impl FakeStripe {
    pub async fn spawn(options: FakeStripeOptions) -> Self {
        let shared = Arc::new(Shared {
            secret_key: options.secret_key,
            state: Mutex::new(State { now: options.now, ..State::default() }),
            faults: Mutex::new(VecDeque::new()),
            requests: Mutex::new(Vec::new()),
        });
        let app =
            Router::new().fallback(api::handle).layer(DefaultBodyLimit::max(1024 * 1024)).with_state(shared.clone());
        let (addr, server) = crate::serve_on_loopback(app, "fake stripe").await;
        let http = reqwest::Client::builder().timeout(Duration::from_secs(30)).build().expect("a reqwest client");
        Self { addr, shared, webhook_secret: options.webhook_secret, webhook_url: Mutex::new(None), http, server }
    }

    /// `http://127.0.0.1:PORT`, for `--stripe-api-base`.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Where [`Self::deliver`] sends events (Roost's `/webhooks/stripe`).
    pub fn set_webhook_url(&self, url: &str) {
        *lock(&self.webhook_url) = Some(url.to_string());
    }

    /// The next request whose path starts with `path_prefix` fails this way (FIFO).
    pub fn fail_next(&self, path_prefix: &str, fault: Fault) {
        lock(&self.shared.faults).push_back((path_prefix.to_string(), fault));
    }

    pub fn requests(&self) -> Vec<RecordedRequest> {
        lock(&self.shared.requests).clone()
    }

    pub fn requests_to(&self, method: &str, path: &str) -> Vec<RecordedRequest> {
        self.requests().into_iter().filter(|r| r.method == method && r.path == path).collect()
    }

    pub fn clear_requests(&self) {
        lock(&self.shared.requests).clear();
    }

    /// Every event produced so far, in the order Stripe produced them.
    pub fn events(&self) -> Vec<Event> {
        lock(&self.shared.state).events.clone()
    }

    pub fn subscription(&self, id: &str) -> Option<Value> {
        lock(&self.shared.state).subscriptions.get(id).cloned()
    }

    pub fn session(&self, id: &str) -> Option<Value> {
        lock(&self.shared.state).sessions.get(id).cloned()
    }

    /// The session a Checkout URL points at (`…/c/pay/<id>`).
    pub fn session_of_url(url: &str) -> String {
        url.rsplit('/').next().unwrap_or_default().to_string()
    }

    pub fn customers(&self) -> Vec<Value> {
        lock(&self.shared.state).customers.values().cloned().collect()
    }

    /// The customer pays: a subscription and its paid first invoice, or the pack's payment.
    pub fn complete_checkout(&self, session_id: &str) -> Vec<Event> {
        let mut state = lock(&self.shared.state);
        objects::complete_checkout(&mut state, session_id)
    }

    /// The next period begins and its invoice is paid.
    pub fn renew(&self, subscription_id: &str) -> Vec<Event> {
        objects::renew(&mut lock(&self.shared.state), subscription_id, true)
    }

    /// The next period begins and its invoice's payment fails: the subscription is `past_due`.
    pub fn fail_renewal(&self, subscription_id: &str) -> Vec<Event> {
        objects::renew(&mut lock(&self.shared.state), subscription_id, false)
    }

    /// A plan change (what the Portal does), effective at once.
    pub fn change_price(&self, subscription_id: &str, price: &str) -> Vec<Event> {
        objects::change_price(&mut lock(&self.shared.state), subscription_id, price)
    }

    /// `status` set directly, with the `customer.subscription.updated` it produces.
    pub fn set_status(&self, subscription_id: &str, status: &str) -> Vec<Event> {
        objects::set_status(&mut lock(&self.shared.state), subscription_id, status)
    }

    /// Cancelled now: `canceled`, and `customer.subscription.deleted`.
    pub fn cancel(&self, subscription_id: &str) -> Vec<Event> {
        objects::cancel(&mut lock(&self.shared.state), subscription_id)
    }

    /// The customer (or the bank) takes the payment back: the pack's charge is refunded, in
    /// full or in part, with the `charge.refunded` Stripe sends.
    pub fn refund(&self, payment_intent: &str, full: bool) -> Vec<Event> {
        objects::refund(&mut lock(&self.shared.state), payment_intent, full)
    }

    /// The cardholder disputes the payment: `charge.dispute.created`.
    pub fn dispute(&self, payment_intent: &str) -> Vec<Event> {
        objects::dispute(&mut lock(&self.shared.state), payment_intent)
    }

    pub fn payment_intents(&self) -> Vec<Value> {
        lock(&self.shared.state).payment_intents.values().cloned().collect()
    }

    /// The customer removes their saved card (new off-session charges then fail).
    pub fn remove_card(&self, customer: &str) {
        if let Some(c) = lock(&self.shared.state).customers.get_mut(customer) {
            c["invoice_settings"]["default_payment_method"] = Value::Null;
        }
    }

    /// The header Stripe signs `body` with at `t`.
    pub fn signature(&self, body: &[u8], t: i64) -> String {
        sign(&self.webhook_secret, body, t)
    }

    /// Signs the event now and POSTs it to the webhook URL; returns the status.
    pub async fn deliver(&self, event: &Event) -> u16 {
        let url = lock(&self.webhook_url).clone().expect("set_webhook_url first");
        let t = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64);
        let res = self
            .http
            .post(url)
            .header("content-type", "application/json; charset=utf-8")
            .header("stripe-signature", self.signature(event.body.as_bytes(), t))
            .body(event.body.clone())
            .send()
            .await;
        res.map_or(0, |r| r.status().as_u16())
    }

    /// Delivers each in turn; panics on any answer but 200 (Stripe would retry).
    pub async fn deliver_all(&self, events: &[Event]) {
        for event in events {
            let status = self.deliver(event).await;
            assert_eq!(status, 200, "delivering {} ({})", event.id, event.kind);
        }
    }
}

impl Drop for FakeStripe {
    fn drop(&mut self) {
        self.server.abort();
    }
}

/// Stripe's scheme, written here apart from Roost's: `t={t},v1=hex(HMAC-SHA256(secret, "{t}.{body}"))`,
/// the secret as its UTF-8 bytes, `whsec_` included.
pub fn sign(secret: &str, body: &[u8], t: i64) -> String {
    let key = hmac::Key::new(hmac::HMAC_SHA256, secret.as_bytes());
    let mut context = hmac::Context::with_key(&key);
    context.update(t.to_string().as_bytes());
    context.update(b".");
    context.update(body);
    format!("t={t},v1={}", hex::encode(context.sign().as_ref()))
}

/// A Stripe error body.
pub(crate) fn error_body(kind: &str, message: &str) -> Value {
    json!({ "error": { "type": kind, "message": message } })
}
