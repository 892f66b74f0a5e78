//! Opens a WebSocket to a user's agent and performs the handshake server-side: answer
//! `connect.challenge` as `gateway-client`/`backend` with the internal token and a signed
//! device proof, then check that `hello-ok` granted every scope asked for.

use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use super::{DeviceIdentity, PROTOCOL, SCOPES};

const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(15);
const CONNECT_ID: &str = "roost-connect";
const CLIENT_ID: &str = "gateway-client";
const CLIENT_MODE: &str = "backend";
const PLATFORM: &str = "linux";
/// OpenClaw accepts payloads up to 25 MiB after the handshake.
pub const UPSTREAM_MAX_MESSAGE: usize = 26 * 1024 * 1024;

pub type AgentSocket = WebSocketStream<MaybeTlsStream<TcpStream>>;

pub struct Upstream {
    pub socket: AgentSocket,
    /// The `hello-ok` payload.
    pub hello: Value,
}

#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error("the agent is not reachable: {0}")]
    Unreachable(String),
    #[error("the agent is still starting")]
    Starting,
    #[error("the agent refused the connection: {code}: {message}")]
    Refused { code: String, message: String },
    #[error("the agent granted scopes {granted:?}, not {wanted:?}")]
    ScopesMissing { granted: Vec<String>, wanted: Vec<String> },
    #[error("the agent broke the protocol: {0}")]
    Protocol(String),
    #[error("the handshake timed out")]
    Timeout,
}

impl ConnectError {
    fn retryable(&self) -> bool {
        matches!(self, Self::Unreachable(_) | Self::Starting | Self::Timeout)
    }
}

pub fn socket_config() -> WebSocketConfig {
    WebSocketConfig::default()
        .read_buffer_size(16 * 1024)
        .write_buffer_size(16 * 1024)
        .max_write_buffer_size(UPSTREAM_MAX_MESSAGE + 1024 * 1024)
        .max_message_size(Some(UPSTREAM_MAX_MESSAGE))
        .max_frame_size(Some(16 * 1024 * 1024))
}

pub async fn connect(address: &str, token: &str, device: &DeviceIdentity) -> Result<Upstream, ConnectError> {
    connect_through(address, token, device, None).await
}

/// Like [`connect`]; with `agent_secret`, through a Fly machine's sidecar, which admits only a
/// request carrying the machine's secret (and strips it before OpenClaw sees anything).
pub async fn connect_through(
    address: &str,
    token: &str,
    device: &DeviceIdentity,
    agent_secret: Option<&str>,
) -> Result<Upstream, ConnectError> {
    connect_scoped(address, token, device, &SCOPES, agent_secret).await
}

/// Like [`connect_through`], asking for (and requiring) `scopes` instead of the relay's.
pub async fn connect_scoped(
    address: &str,
    token: &str,
    device: &DeviceIdentity,
    scopes: &[&str],
    agent_secret: Option<&str>,
) -> Result<Upstream, ConnectError> {
    tokio::time::timeout(HANDSHAKE_TIMEOUT, handshake(address, token, device, scopes, agent_secret))
        .await
        .map_err(|_| ConnectError::Timeout)?
}

/// Retries while the agent is unreachable or still starting, until `deadline`.
pub async fn connect_with_retry(
    address: &str,
    token: &str,
    device: &DeviceIdentity,
    agent_secret: Option<&str>,
    within: Duration,
) -> Result<Upstream, ConnectError> {
    let deadline = Instant::now() + within;
    let mut delay = Duration::from_millis(200);
    loop {
        match connect_through(address, token, device, agent_secret).await {
            Err(e) if e.retryable() && Instant::now() + delay < deadline => {
                tracing::debug!(error = %e, "agent connect failed; retrying");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(2));
            }
            other => return other,
        }
    }
}

async fn handshake(
    address: &str,
    token: &str,
    device: &DeviceIdentity,
    wanted: &[&str],
    agent_secret: Option<&str>,
) -> Result<Upstream, ConnectError> {
    // Built from the URL alone: no Origin, Cookie, Authorization or X-Forwarded-* goes upstream.
    let mut request = address.into_client_request().map_err(|e| ConnectError::Unreachable(e.to_string()))?;
    if let Some(secret) = agent_secret {
        let value = secret.parse().map_err(|_| ConnectError::Unreachable("the agent secret is not a header".into()))?;
        request.headers_mut().insert(provisioner::fly::AGENT_SECRET_HEADER, value);
    }
    let (mut socket, _) = tokio_tungstenite::connect_async_with_config(request, Some(socket_config()), true)
        .await
        .map_err(|e| ConnectError::Unreachable(e.to_string()))?;

    let challenge = loop {
        let frame = next_json(&mut socket).await?;
        if frame["type"] == "event" && frame["event"] == "connect.challenge" {
            break frame["payload"].clone();
        }
    };
    let nonce = challenge["nonce"].as_str().ok_or_else(|| ConnectError::Protocol("challenge without nonce".into()))?;
    let signed_at = challenge["ts"].as_i64().ok_or_else(|| ConnectError::Protocol("challenge without ts".into()))?;
    let scopes = wanted.join(",");
    let proof = format!(
        "v3|{}|{CLIENT_ID}|{CLIENT_MODE}|operator|{scopes}|{signed_at}|{token}|{nonce}|{PLATFORM}|",
        device.id()
    );
    let connect = json!({
        "type": "req", "id": CONNECT_ID, "method": "connect",
        "params": {
            "minProtocol": PROTOCOL, "maxProtocol": PROTOCOL,
            "client": { "id": CLIENT_ID, "version": env!("CARGO_PKG_VERSION"), "platform": PLATFORM, "mode": CLIENT_MODE },
            // `tool-events`: the agent streams its tool calls to us (the chat shows them as cards).
            "role": "operator", "scopes": wanted, "caps": ["tool-events"],
            "auth": { "token": token },
            "device": {
                "id": device.id(), "publicKey": device.public_key(), "signature": device.sign(&proof),
                "signedAt": signed_at, "nonce": nonce,
            },
        },
    });
    socket.send(Message::text(connect.to_string())).await.map_err(|e| ConnectError::Unreachable(e.to_string()))?;

    let response = loop {
        let frame = next_json(&mut socket).await?;
        if frame["type"] == "res" && frame["id"] == CONNECT_ID {
            break frame;
        }
    };
    if response["ok"] != true {
        let code = response["error"]["code"].as_str().unwrap_or("UNKNOWN").to_string();
        let message = response["error"]["message"].as_str().unwrap_or_default().to_string();
        return Err(if code == "UNAVAILABLE" {
            ConnectError::Starting
        } else {
            ConnectError::Refused { code, message }
        });
    }
    let hello = response["payload"].clone();
    if hello["type"] != "hello-ok" || hello["protocol"].as_u64() != Some(PROTOCOL) {
        return Err(ConnectError::Protocol(format!(
            "unexpected hello: type {}, protocol {}",
            hello["type"], hello["protocol"]
        )));
    }
    let granted: Vec<String> = hello["auth"]["scopes"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|s| s.as_str().map(str::to_string))
        .collect();
    if !wanted.iter().all(|s| granted.iter().any(|g| g == s)) {
        return Err(ConnectError::ScopesMissing { granted, wanted: wanted.iter().map(|s| s.to_string()).collect() });
    }
    Ok(Upstream { socket, hello })
}

async fn next_json(socket: &mut AgentSocket) -> Result<Value, ConnectError> {
    loop {
        match socket.next().await {
            Some(Ok(Message::Text(text))) => {
                return serde_json::from_str(text.as_str())
                    .map_err(|e| ConnectError::Protocol(format!("frame is not JSON: {e}")));
            }
            Some(Ok(Message::Close(frame))) => {
                return Err(match frame {
                    Some(f) if u16::from(f.code) == 1013 => ConnectError::Starting,
                    Some(f) => ConnectError::Refused {
                        code: format!("close {}", u16::from(f.code)),
                        message: f.reason.to_string(),
                    },
                    None => ConnectError::Unreachable("closed during the handshake".into()),
                });
            }
            Some(Ok(_)) => continue,
            Some(Err(e)) => return Err(ConnectError::Unreachable(e.to_string())),
            None => return Err(ConnectError::Unreachable("closed during the handshake".into())),
        }
    }
}
