//! A short-lived admin connection to one agent, for Roost's own configuration RPCs
//! (`config.*`, `channels.*`). Kept apart from the relay's link, which browsers share and which
//! never holds the admin or pairing scopes.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

use super::{AgentSocket, ConnectError, DeviceIdentity, connect_scoped};

pub const ADMIN_SCOPES: [&str; 4] = ["operator.read", "operator.write", "operator.admin", "operator.pairing"];

#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    #[error(transparent)]
    Connect(#[from] ConnectError),
    #[error("the agent did not answer {0} in time")]
    Timeout(String),
    #[error("the agent connection closed")]
    Closed,
    /// The agent answered `ok:false`.
    #[error("{method} failed: {code}: {message}")]
    Refused { method: String, code: String, message: String },
}

pub struct AdminLink {
    socket: AgentSocket,
    next: u64,
}

impl AdminLink {
    pub async fn open(
        address: &str,
        token: &str,
        device: &DeviceIdentity,
        agent_secret: Option<&str>,
    ) -> Result<Self, AdminError> {
        let upstream = connect_scoped(address, token, device, &ADMIN_SCOPES, agent_secret).await?;
        Ok(Self { socket: upstream.socket, next: 1 })
    }

    /// Sends one request and waits for its answer; returns the payload of an `ok:true` answer.
    pub async fn call(&mut self, method: &str, params: Value, timeout: Duration) -> Result<Value, AdminError> {
        let id = format!("roost-admin-{}", self.next);
        self.next += 1;
        let frame = json!({ "type": "req", "id": id, "method": method, "params": params });
        let exchange = async {
            self.socket.send(Message::text(frame.to_string())).await.map_err(|_| AdminError::Closed)?;
            loop {
                match self.socket.next().await {
                    Some(Ok(Message::Text(text))) => {
                        let Ok(frame) = serde_json::from_str::<Value>(text.as_str()) else { continue };
                        if frame["type"] == "res" && frame["id"] == id.as_str() {
                            return Ok(frame);
                        }
                    }
                    Some(Ok(Message::Close(_))) | None | Some(Err(_)) => return Err(AdminError::Closed),
                    Some(Ok(_)) => {}
                }
            }
        };
        let frame = tokio::time::timeout(timeout, exchange).await.map_err(|_| AdminError::Timeout(method.into()))??;
        if frame["ok"] == true {
            return Ok(frame["payload"].clone());
        }
        Err(AdminError::Refused {
            method: method.to_string(),
            code: frame["error"]["code"].as_str().unwrap_or("UNKNOWN").to_string(),
            message: frame["error"]["message"].as_str().unwrap_or_default().chars().take(300).collect(),
        })
    }

    pub async fn close(mut self) {
        let _ = tokio::time::timeout(Duration::from_secs(2), self.socket.close(None)).await;
    }
}
