//! What Roost asks of the user's agent for its channels, over a short-lived admin link:
//! `config.get` + `config.patch` (with `baseHash`), `channels.status` and the DM pairing RPCs.

use std::time::Duration;

use serde_json::{Value, json};

use super::Channel;
use crate::app::App;
use crate::domain::UserId;
use crate::openclaw::{AdminError, AdminLink, ConnectError};

const RPC_TIMEOUT: Duration = Duration::from_secs(20);

#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    /// Not running or still starting: a start has been asked for.
    #[error("the agent is not running yet")]
    Starting,
    #[error("the agent could not be reached: {0}")]
    Unreachable(String),
    /// The agent refused (an invalid config, a missing method), scrubbed.
    #[error("the agent refused: {0}")]
    Refused(String),
}

impl From<AdminError> for AgentError {
    fn from(e: AdminError) -> Self {
        match e {
            AdminError::Connect(ConnectError::Starting) => Self::Starting,
            AdminError::Refused { method, code, message } => {
                Self::Refused(super::scrub(&format!("{method}: {code}: {message}")))
            }
            other => Self::Unreachable(super::scrub(&other.to_string())),
        }
    }
}

pub struct Agent {
    link: AdminLink,
}

impl Agent {
    /// Connects to the user's running agent. One that is not running is asked to start, and
    /// this answers [`AgentError::Starting`] for the caller to retry.
    pub async fn open(app: &App, user: &UserId, start_if_stopped: bool) -> Result<Self, AgentError> {
        // Roost working on the agent's channels is use: the idle watch must not stop it meanwhile.
        app.machines.activity().touch(user);
        let Some(address) = app.machines.address_if_ready(user).await else {
            if start_if_stopped {
                // Concurrent callers share one start; the page shows its stages.
                let (machines, user) = (app.machines.clone(), user.clone());
                tokio::spawn(async move {
                    if let Err(e) = machines.ensure_ready(&user).await {
                        tracing::info!(user_id = %user, error = %e, "the agent did not start for a bot");
                    }
                });
            }
            return Err(AgentError::Starting);
        };
        let token = crate::agent_credentials::gateway_token(&app.secret, user);
        let agent_secret = app.relays.agent_secret(user);
        let link = AdminLink::open(&address, &token, app.relays.device(), agent_secret.as_deref()).await?;
        Ok(Self { link })
    }

    /// After a pause, opens the link again: the agent's gateway restarting drops it. The old
    /// link stays when the agent is not back yet (its next call tells).
    pub async fn reopen(&mut self, app: &App, user: &UserId) {
        tokio::time::sleep(std::time::Duration::from_secs(1)).await;
        if let Ok(fresh) = Self::open(app, user, false).await {
            std::mem::replace(self, fresh).close().await;
        }
    }

    /// Merges `patch` into the agent's config (`null` deletes a key); retries when the config
    /// changed between `config.get` and `config.patch` (an agent finishing its start writes it).
    pub async fn patch_config(&mut self, patch: &Value) -> Result<(), AgentError> {
        let mut last = None;
        for attempt in 0..3 {
            if attempt > 0 {
                tokio::time::sleep(std::time::Duration::from_millis(300)).await;
            }
            let current = self.link.call("config.get", json!({}), RPC_TIMEOUT).await?;
            let Some(hash) = current["hash"].as_str().map(str::to_string) else {
                return Err(AgentError::Refused("config.get gave no hash".into()));
            };
            let params = json!({ "raw": patch.to_string(), "baseHash": hash, "note": "Roost integrations" });
            match self.link.call("config.patch", params, RPC_TIMEOUT).await {
                Ok(_) => return Ok(()),
                Err(AdminError::Refused { message, .. }) if message.contains("hash") => last = Some(message),
                Err(e) => return Err(e.into()),
            }
        }
        Err(AgentError::Refused(super::scrub(&last.unwrap_or_default())))
    }

    /// The channel's block in the agent's config, as `config.get` reads it back.
    pub async fn channel_config(&mut self, channel: Channel) -> Result<Value, AgentError> {
        let current = self.link.call("config.get", json!({}), RPC_TIMEOUT).await?;
        let config = if current["parsed"].is_object() { &current["parsed"] } else { &current["config"] };
        Ok(config["channels"][channel.as_str()].clone())
    }

    /// `channels.status {probe:false}`: the whole answer (every channel).
    pub async fn status(&mut self) -> Result<Value, AgentError> {
        Ok(self.link.call("channels.status", json!({ "probe": false }), RPC_TIMEOUT).await?)
    }

    pub async fn pairing_requests(&mut self, channel: Channel) -> Result<Value, AgentError> {
        Ok(self.link.call("channels.pairing.list", json!({ "channel": channel.as_str() }), RPC_TIMEOUT).await?)
    }

    /// Approves a pending DM request (the sender is told); returns the sender's id.
    pub async fn approve(&mut self, channel: Channel, request_id: &str) -> Result<Option<String>, AgentError> {
        let params =
            json!({ "channel": channel.as_str(), "accountId": "default", "requestId": request_id, "notify": true });
        let answer = self.link.call("channels.pairing.approve", params, RPC_TIMEOUT).await?;
        Ok(answer["senderId"]
            .as_str()
            .map(str::to_string)
            .or_else(|| answer["senderId"].as_i64().map(|i| i.to_string())))
    }

    /// Rejects (dismisses) a pending DM request.
    pub async fn dismiss(&mut self, channel: Channel, request_id: &str) -> Result<(), AgentError> {
        let params = json!({ "channel": channel.as_str(), "accountId": "default", "requestId": request_id });
        self.link.call("channels.pairing.dismiss", params, RPC_TIMEOUT).await?;
        Ok(())
    }

    pub async fn close(self) {
        self.link.close().await;
    }
}
