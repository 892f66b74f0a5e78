//! A stateful fake of Fly.io's Machines API (`/v1/apps/...`), with the JSON shapes and statuses
//! of `shared/research/fly-machines-api.md`: apps (globally unique names, org, network), IP
//! assignments, secrets (versioned), volumes (region, zone, attachment, forks), and machines with
//! the real state machine and a blocking `/wait`. It reproduces eventual consistency (404 right
//! after a create, lists that lag) and takes scripted faults (see [`Fault`]). Bounded: at most
//! `max_objects` objects and the last 1,000 requests are kept.

mod faults;
mod http;
mod machines;
mod route;
mod world;

pub use faults::Fault;
pub use route::Op;

use std::collections::{BTreeMap, HashSet, VecDeque};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use axum::Router;
use axum::http::{HeaderMap, header};
use serde_json::Value;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use faults::Faults;
use world::{Lag, World, app_json, volume_json};

const MAX_RECORDED: usize = 1_000;

#[derive(Clone, Debug)]
pub struct FakeFlyOptions {
    /// The token `Authorization: Bearer <token>` (or `FlyV1 <token>`) must carry.
    pub token: String,
    /// The only org this token can create apps in.
    pub org_slug: String,
    /// How long each transient machine state lasts (`created` → `starting` → `started` is two
    /// steps). `None`: states move only on [`FakeFly::advance`].
    pub transition_step: Option<Duration>,
    /// The longest a `/wait` blocks before its 408 (the real cap is 60 s).
    pub max_wait: Duration,
    /// How long a [`Fault::Hang`] holds its request (or until the fake stops).
    pub hang: Duration,
    /// How many GETs of a new app, volume or machine answer 404 first.
    pub not_found_after_create: u32,
    /// How many lists leave out a new app, volume or machine.
    pub list_lag: u32,
    /// Apps, volumes and machines kept in all; creates beyond it get a 422.
    pub max_objects: usize,
}

impl Default for FakeFlyOptions {
    fn default() -> Self {
        Self {
            token: "fake-fly-token".to_string(),
            org_slug: "roost-test".to_string(),
            transition_step: Some(Duration::from_millis(20)),
            max_wait: Duration::from_secs(60),
            hang: Duration::from_secs(120),
            not_found_after_create: 0,
            list_lag: 0,
            max_objects: 10_000,
        }
    }
}

/// One request as the fake saw it (never its `Authorization` value).
#[derive(Clone, Debug)]
pub struct Recorded {
    pub method: String,
    pub path: String,
    pub query: Vec<(String, String)>,
    pub body: Value,
    pub op: Option<Op>,
    pub authorized: bool,
}

pub(super) struct Shared {
    options: FakeFlyOptions,
    world: Mutex<World>,
    faults: Mutex<Faults>,
    requests: Mutex<VecDeque<Recorded>>,
    /// Every request ever received (the log above keeps only the last 1,000).
    seen: std::sync::atomic::AtomicUsize,
    /// Bumped on every change, so `/wait` wakes up.
    changes: watch::Sender<u64>,
    held: AtomicBool,
    shutdown: watch::Sender<bool>,
}

pub(super) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Shared {
    fn authorized(&self, headers: &HeaderMap) -> bool {
        let Some(value) = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()) else { return false };
        let token = self.options.token.as_str();
        value.strip_prefix("Bearer ").or_else(|| value.strip_prefix("FlyV1 ")) == Some(token)
    }

    fn record(&self, request: Recorded) {
        self.seen.fetch_add(1, Ordering::SeqCst);
        let mut log = lock(&self.requests);
        if log.len() == MAX_RECORDED {
            log.pop_front();
        }
        log.push_back(request);
    }

    fn changed(&self) {
        self.changes.send_modify(|n| *n += 1);
    }

    fn advance(&self) {
        if lock(&self.world).advance() {
            self.changed();
        }
    }
}

/// A running fake Machines API. Stops when dropped.
pub struct FakeFly {
    addr: SocketAddr,
    shared: Arc<Shared>,
    server: JoinHandle<()>,
    ticker: Option<JoinHandle<()>>,
}

impl FakeFly {
    pub async fn spawn(options: FakeFlyOptions) -> FakeFly {
        let world = World {
            org: options.org_slug.clone(),
            apps: BTreeMap::new(),
            foreign: HashSet::new(),
            full: HashSet::new(),
            lag: Lag { gets: options.not_found_after_create, lists: options.list_lag },
            max_objects: options.max_objects,
            seq: 0,
        };
        let step = options.transition_step;
        let shared = Arc::new(Shared {
            options,
            world: Mutex::new(world),
            faults: Mutex::new(Faults::default()),
            requests: Mutex::new(VecDeque::new()),
            seen: std::sync::atomic::AtomicUsize::new(0),
            changes: watch::channel(0).0,
            held: AtomicBool::new(false),
            shutdown: watch::channel(false).0,
        });
        let app = Router::new().fallback(http::handle).with_state(shared.clone());
        let (addr, server) = crate::serve_on_loopback(app, "fake fly").await;
        let ticker = step.map(|step| {
            let shared = Arc::downgrade(&shared);
            tokio::spawn(async move {
                loop {
                    tokio::time::sleep(step).await;
                    let Some(shared) = shared.upgrade() else { return };
                    if !shared.held.load(Ordering::SeqCst) {
                        shared.advance();
                    }
                }
            })
        });
        FakeFly { addr, shared, server, ticker }
    }

    /// `http://127.0.0.1:PORT`, the client's base URL (paths start with `/v1`).
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn token(&self) -> &str {
        &self.shared.options.token
    }

    pub fn org_slug(&self) -> &str {
        &self.shared.options.org_slug
    }

    /// Queues a fault for the next request of any operation (after per-operation ones).
    pub fn fail_next(&self, fault: Fault) {
        lock(&self.shared.faults).push(None, fault);
    }

    /// Queues a fault for the next request of `op` (FIFO, one per request).
    pub fn fail(&self, op: Op, fault: Fault) {
        lock(&self.shared.faults).push(Some(op), fault);
    }

    /// Faults queued and not yet used.
    pub fn pending_faults(&self) -> usize {
        lock(&self.shared.faults).pending()
    }

    /// The last 1,000 requests, oldest first (unauthorized ones included).
    pub fn requests(&self) -> Vec<Recorded> {
        lock(&self.shared.requests).iter().cloned().collect()
    }

    /// How many requests arrived in all, ever.
    pub fn requests_seen(&self) -> usize {
        self.shared.seen.load(Ordering::SeqCst)
    }

    /// How many requests of `op` arrived.
    pub fn calls(&self, op: Op) -> usize {
        lock(&self.shared.requests).iter().filter(|r| r.op == Some(op)).count()
    }

    /// Freezes (or thaws) the transition ticker: machines stay in their transient states.
    pub fn hold_transitions(&self, hold: bool) {
        self.shared.held.store(hold, Ordering::SeqCst);
    }

    /// Moves every transient machine (and filling volume) one step now.
    pub fn advance(&self) {
        self.shared.advance();
    }

    /// Puts a machine into any state (`failed`, say), as the platform might.
    pub fn set_machine_state(&self, app: &str, id: &str, state: &str) {
        if let Some(m) = lock(&self.shared.world).apps.get_mut(app).and_then(|a| a.machines.get_mut(id)) {
            m.state = state.to_string();
            m.launching = false;
        }
        self.shared.changed();
    }

    /// A name another Fly customer holds: create gets `name_taken`, GET a 403.
    pub fn add_foreign_app(&self, name: &str) {
        lock(&self.shared.world).foreign.insert(name.to_string());
    }

    /// While full, volume and machine creates in `region` get a capacity error.
    pub fn set_region_full(&self, region: &str, full: bool) {
        let mut w = lock(&self.shared.world);
        if full {
            w.full.insert(region.to_string())
        } else {
            w.full.remove(region)
        };
    }

    /// The app as `GET` answers it, without counting as a GET.
    pub fn app(&self, name: &str) -> Option<Value> {
        lock(&self.shared.world).apps.get(name).map(app_json)
    }

    pub fn app_names(&self) -> Vec<String> {
        lock(&self.shared.world).apps.keys().cloned().collect()
    }

    /// Every machine of the app, destroyed ones included, as `GET` answers them.
    pub fn machines(&self, app: &str) -> Vec<Value> {
        let w = lock(&self.shared.world);
        w.apps.get(app).map(|a| a.machines.values().map(machines::machine_json).collect()).unwrap_or_default()
    }

    pub fn volumes(&self, app: &str) -> Vec<Value> {
        let w = lock(&self.shared.world);
        w.apps.get(app).map(|a| a.volumes.values().map(volume_json).collect()).unwrap_or_default()
    }

    /// The app's secrets with their values, and the secrets version.
    pub fn secrets(&self, app: &str) -> (BTreeMap<String, String>, u64) {
        let w = lock(&self.shared.world);
        w.apps
            .get(app)
            .map(|a| (a.secrets.iter().map(|(k, (v, _))| (k.clone(), v.clone())).collect(), a.secrets_version))
            .unwrap_or_default()
    }

    pub fn ips(&self, app: &str) -> Vec<Value> {
        lock(&self.shared.world).apps.get(app).map(|a| a.ips.clone()).unwrap_or_default()
    }

    /// Apps, volumes and machines held now.
    pub fn object_count(&self) -> usize {
        lock(&self.shared.world).objects()
    }

    /// Stops serving and releases hanging requests. Idempotent; also called on Drop.
    pub fn shutdown(&self) {
        let _ = self.shared.shutdown.send(true);
        self.server.abort();
        if let Some(ticker) = &self.ticker {
            ticker.abort();
        }
    }
}

impl Drop for FakeFly {
    fn drop(&mut self) {
        self.shutdown();
    }
}
