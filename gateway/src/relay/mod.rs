//! The chat relay: `GET /ws` in the browser, one handshaken link per user to their agent.

mod browser_request;
mod explain;
mod frames;
mod hub;
mod recheck;
mod replay;
mod replay_memory;
pub mod run_ends;
mod socket;
mod sockets;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::mpsc;

pub use explain::Explain;
pub use frames::{ALLOWED_METHODS, browser_close};
pub use hub::{AgentTimings, Hub, RpcError};
pub use recheck::recheck_credentials;
pub use socket::upgrade;
pub use sockets::{MAX_SOCKETS_PER_USER, Registration};

use crate::auth::{AuthUser, AuthVia, Revoked};
use crate::domain::UserId;
use crate::lifecycle::activity::Activity;
use crate::openclaw::{ConnectError, DeviceIdentity, connect_with_retry};
use crate::secret::ServerSecret;
use replay::ReplayBuffer;
pub use replay_memory::ReplayMemory;
use sockets::Sockets;

/// How long an agent may keep refusing with "starting" before a connect counts as failed.
const CONNECT_WITHIN: Duration = Duration::from_secs(60);

#[derive(Debug, Clone, Copy)]
pub struct Timings {
    /// A link with no socket left is kept this long, so a reload resumes without a new handshake.
    pub link_idle: Duration,
    pub browser_ping: Duration,
    pub browser_pong_deadline: Duration,
    pub agent: AgentTimings,
    pub credential_recheck: Duration,
}

pub struct Relays {
    device: DeviceIdentity,
    /// Each user's gateway token is derived from it when their link opens.
    secret: Arc<ServerSecret>,
    sockets: Arc<Sockets>,
    links: Arc<Mutex<HashMap<UserId, Arc<UserLink>>>>,
    finished_runs: mpsc::Sender<(UserId, String)>,
    /// Hears which chat runs are in progress (an agent mid-run is never stopped for idleness).
    activity: Arc<Activity>,
    explain: Explain,
    /// The budget every user's replay buffer counts against.
    replay_memory: Arc<ReplayMemory>,
    /// Chat runs that were stopped or failed, so a reload still says so.
    pub run_ends: Arc<run_ends::RunEnds>,
    pub timings: Timings,
    /// Agents sit behind `roost-agent` (Fly): each link carries the user's agent secret.
    agent_secrets: bool,
}

struct UserLink {
    replay: Arc<Mutex<ReplayBuffer>>,
    slot: tokio::sync::Mutex<Slot>,
}

#[derive(Default)]
struct Slot {
    hub: Option<Arc<Hub>>,
    /// Taken out of `links`; whoever finds it retired looks the user's link up again.
    retired: bool,
}

impl Relays {
    /// `finished_runs` hears `(user, session key)` whenever a chat run ends, to refresh history.
    /// Replay buffers together hold at most `replay_memory_limit` bytes.
    #[allow(clippy::too_many_arguments)] // called once, from `App::build`, each argument named there
    pub fn new(
        db: crate::db::Db,
        device: DeviceIdentity,
        secret: Arc<ServerSecret>,
        finished_runs: mpsc::Sender<(UserId, String)>,
        activity: Arc<Activity>,
        explain: Explain,
        timings: Timings,
        replay_memory_limit: usize,
    ) -> Self {
        let (sockets, links) = (Arc::default(), Arc::default());
        let replay_memory = ReplayMemory::new(replay_memory_limit);
        let run_ends = Arc::new(run_ends::RunEnds::new(db));
        let agent_secrets = false;
        Self {
            device,
            secret,
            sockets,
            links,
            finished_runs,
            activity,
            explain,
            replay_memory,
            run_ends,
            timings,
            agent_secrets,
        }
    }

    /// Links present each user's agent secret to the sidecar in front of their agent.
    pub fn with_agent_secrets(mut self) -> Self {
        self.agent_secrets = true;
        self
    }

    /// Roost's device identity, for connections of its own to agents (integrations).
    pub fn device(&self) -> &DeviceIdentity {
        &self.device
    }

    /// The secret a sidecar in front of `user`'s agent wants on every connection, if there is one.
    pub fn agent_secret(&self, user: &UserId) -> Option<String> {
        self.agent_secrets.then(|| crate::agent_credentials::agent_secret(&self.secret, user))
    }

    /// Bytes held by every user's replay buffer together.
    pub fn replay_bytes(&self) -> usize {
        self.replay_memory.used()
    }

    /// Closes every socket that was opened with this credential (4401); for a Clerk session,
    /// every user's sockets are looked at (none are woken).
    pub fn revoke(&self, revoked: Revoked) {
        match &revoked {
            Revoked::Session { user, token_hash } => self
                .sockets
                .revoke(Some(user), |via| matches!(via, AuthVia::Session { token_hash: t } if t == token_hash)),
            Revoked::ApiToken { user, token_id } => {
                self.sockets.revoke(Some(user), |via| matches!(via, AuthVia::ApiToken { token_id: t } if t == token_id))
            }
            Revoked::ClerkSession { session_id } => {
                self.sockets.revoke(None, |via| matches!(via, AuthVia::Clerk { session_id: s } if s == session_id))
            }
            Revoked::User(user) => self.sockets.revoke(Some(user), |_| true),
        }
    }

    fn revoke_exact(&self, user: &UserId, via: &AuthVia) {
        self.sockets.revoke(Some(user), |v| v == via);
    }

    fn open_credentials(&self) -> Vec<(UserId, AuthVia)> {
        self.sockets.credentials()
    }

    /// A place for a new socket of this user, unless they hold `MAX_SOCKETS_PER_USER` already.
    pub fn register(&self, auth: &AuthUser) -> Option<Registration> {
        self.sockets.register(auth)
    }

    /// Sockets the user has open, including ones still waiting for their agent.
    pub fn socket_count(&self, user: &UserId) -> usize {
        self.sockets.count(user)
    }

    /// Closes the user's sockets (4100) because they stopped their agent: their pages wait for
    /// a Restart rather than reconnect, which would start it again.
    pub fn agent_stopped(&self, user: &UserId) {
        self.sockets.agent_stopped(user);
    }

    /// Users with a socket open here.
    pub fn users_with_sockets(&self) -> Vec<UserId> {
        self.sockets.users()
    }

    /// The user's live link to their agent at `address`, connecting (once) if there is none.
    /// Every link this opens retires itself once idle.
    pub async fn hub(&self, user: &UserId, address: &str) -> Result<Arc<Hub>, ConnectError> {
        let token = crate::agent_credentials::gateway_token(&self.secret, user);
        let agent_secret = self.agent_secret(user);
        loop {
            let link = self
                .links
                .lock()
                .expect("links lock")
                .entry(user.clone())
                .or_insert_with(|| {
                    let replay = self.replay_memory.buffer();
                    Arc::new(UserLink { replay, slot: Default::default() })
                })
                .clone();
            let mut slot = link.slot.lock().await;
            if slot.retired {
                continue;
            }
            if let Some(hub) = slot.hub.as_ref().filter(|h| !h.is_closed()) {
                return Ok(hub.clone());
            }
            let upstream = match connect_with_retry(
                address,
                &token,
                &self.device,
                agent_secret.as_deref(),
                CONNECT_WITHIN,
            )
            .await
            {
                Ok(upstream) => upstream,
                Err(e) => {
                    if slot.hub.is_none() {
                        // A link that never had a hub has no watch to free it.
                        retire(&self.links, user, &link, &mut slot);
                    }
                    return Err(e);
                }
            };
            let (finished, activity, owner) = (self.finished_runs.clone(), self.activity.clone(), user.clone());
            let run_ends = self.run_ends.clone();
            let on_run: hub::OnRun = Arc::new(move |run, error| {
                activity.run_event(&owner, run.run_id, run.ended());
                // A stopped or failed reply is cached too, so the saved view matches the agent's.
                if let (true, Some(key)) = (run.ended(), run.session_key) {
                    run_ends.record(&owner, key, run.state, error);
                    let _ = finished.try_send((owner.clone(), key.to_string()));
                }
            });
            let explain = (self.explain.clone(), user.clone());
            let hub = Hub::start(upstream, link.replay.clone(), explain, on_run, self.timings.agent);
            slot.hub = Some(hub.clone());
            tokio::spawn(retire_when_idle(
                self.links.clone(),
                user.clone(),
                link.clone(),
                hub.clone(),
                self.timings.link_idle,
            ));
            return Ok(hub);
        }
    }

    /// The live link, if one is open (no connecting).
    pub async fn existing_hub(&self, user: &UserId) -> Option<Arc<Hub>> {
        let link = self.links.lock().expect("links lock").get(user).cloned()?;
        let slot = link.slot.lock().await;
        slot.hub.as_ref().filter(|h| !h.is_closed()).cloned()
    }

    /// Users with a link (and a replay buffer) in memory.
    pub fn link_count(&self) -> usize {
        self.links.lock().expect("links lock").len()
    }

    /// Closes every agent link (shutdown); browsers are told to reconnect.
    pub async fn shutdown(&self) {
        let links: Vec<Arc<UserLink>> = self.links.lock().expect("links lock").values().cloned().collect();
        for link in links {
            if let Some(hub) = link.slot.lock().await.hub.as_ref() {
                hub.shutdown();
            }
        }
    }
}

/// Closes `hub` and frees its link and replay buffer once nothing has used it for `idle`
/// (a link the agent closed is freed `idle` after, unless a reconnect replaced its hub).
async fn retire_when_idle(
    links: Arc<Mutex<HashMap<UserId, Arc<UserLink>>>>,
    user: UserId,
    link: Arc<UserLink>,
    hub: Arc<Hub>,
    idle: Duration,
) {
    loop {
        hub.idle_for(idle).await;
        let mut slot = link.slot.lock().await;
        if !slot.hub.as_ref().is_some_and(|current| Arc::ptr_eq(current, &hub)) {
            return;
        }
        // A socket may have joined between the wait and the lock.
        if hub.socket_count() == 0 {
            hub.shutdown();
            retire(&links, &user, &link, &mut slot);
            return;
        }
    }
}

fn retire(links: &Mutex<HashMap<UserId, Arc<UserLink>>>, user: &UserId, link: &Arc<UserLink>, slot: &mut Slot) {
    slot.hub = None;
    slot.retired = true;
    let mut links = links.lock().expect("links lock");
    if links.get(user).is_some_and(|current| Arc::ptr_eq(current, link)) {
        links.remove(user);
    }
    crate::malloc::freed();
}
