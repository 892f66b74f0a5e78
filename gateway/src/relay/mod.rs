//! The chat relay: `GET /ws` in the browser, one handshaken link per user to their agent.

mod frames;
mod hub;
mod replay;
mod socket;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::mpsc;

pub use frames::ALLOWED_METHODS;
pub use hub::{Hub, RpcError};
pub use socket::upgrade;

use crate::domain::UserId;
use crate::openclaw::{ConnectError, DeviceIdentity, connect_with_retry};
use replay::ReplayBuffer;

/// How long an agent may keep refusing with "starting" before a connect counts as failed.
const CONNECT_WITHIN: Duration = Duration::from_secs(60);

/// A credential that just stopped being valid; sockets opened with it are closed (4401).
#[derive(Debug, Clone)]
pub enum Revoked {
    Session { token_hash: String },
    ApiToken { token_id: String },
    ClerkSession { session_id: String },
    User(UserId),
}

pub struct Relays {
    device: DeviceIdentity,
    revocations: tokio::sync::broadcast::Sender<Revoked>,
    links: Mutex<HashMap<UserId, Arc<UserLink>>>,
    finished_runs: mpsc::Sender<(UserId, String)>,
    model_configured: bool,
}

#[derive(Default)]
struct UserLink {
    replay: Arc<Mutex<ReplayBuffer>>,
    hub: tokio::sync::Mutex<Option<Arc<Hub>>>,
}

impl Relays {
    /// `finished_runs` hears `(user, session key)` whenever a chat run ends, to refresh history.
    pub fn new(device: DeviceIdentity, finished_runs: mpsc::Sender<(UserId, String)>, model_configured: bool) -> Self {
        let revocations = tokio::sync::broadcast::channel(64).0;
        Self { device, revocations, links: Mutex::new(HashMap::new()), finished_runs, model_configured }
    }

    /// Closes every socket that was opened with this credential.
    pub fn revoke(&self, revoked: Revoked) {
        let _ = self.revocations.send(revoked);
    }

    fn revocations(&self) -> tokio::sync::broadcast::Receiver<Revoked> {
        self.revocations.subscribe()
    }

    /// The user's live link to their agent at `address`, connecting (once) if there is none.
    pub async fn hub(&self, user: &UserId, address: &str, token: &str) -> Result<Arc<Hub>, ConnectError> {
        let link = self.links.lock().expect("links lock").entry(user.clone()).or_default().clone();
        let mut slot = link.hub.lock().await;
        if let Some(hub) = slot.as_ref().filter(|h| !h.is_closed()) {
            return Ok(hub.clone());
        }
        let upstream = connect_with_retry(address, token, &self.device, CONNECT_WITHIN).await?;
        let finished = self.finished_runs.clone();
        let owner = user.clone();
        let notify: hub::Notify = Arc::new(move |session_key: &str| {
            let _ = finished.try_send((owner.clone(), session_key.to_string()));
        });
        let hub = Hub::start(upstream, link.replay.clone(), self.model_configured, notify);
        *slot = Some(hub.clone());
        Ok(hub)
    }

    /// The live link, if one is open (no connecting).
    pub async fn existing_hub(&self, user: &UserId) -> Option<Arc<Hub>> {
        let link = self.links.lock().expect("links lock").get(user).cloned()?;
        let slot = link.hub.lock().await;
        slot.as_ref().filter(|h| !h.is_closed()).cloned()
    }

    /// Closes the user's link and frees its replay buffer if no socket has used it since.
    pub async fn retire_if_idle(&self, user: &UserId, hub: &Arc<Hub>) {
        let Some(link) = self.links.lock().expect("links lock").get(user).cloned() else { return };
        let slot = link.hub.lock().await;
        let same_hub = slot.as_ref().is_some_and(|current| Arc::ptr_eq(current, hub));
        if same_hub && hub.socket_count() == 0 {
            hub.shutdown();
            drop(slot);
            self.links.lock().expect("links lock").remove(user);
        }
    }

    /// Closes every agent link (shutdown); browsers are told to reconnect.
    pub async fn shutdown(&self) {
        let links: Vec<Arc<UserLink>> = self.links.lock().expect("links lock").values().cloned().collect();
        for link in links {
            if let Some(hub) = link.hub.lock().await.as_ref() {
                hub.shutdown();
            }
        }
    }
}
