//! The Control UI's WebSocket: one agent connection per browser socket, whose handshake Roost
//! answers for ([`super::handshake`]); after it, frames pass both ways, config writes to Roost's
//! keys are refused and credentials never reach the browser ([`super::guard`]).

use std::collections::HashSet;
use std::time::{Duration, Instant};

use axum::extract::ws::{CloseFrame, Message, WebSocket};
use futures_util::{SinkExt, StreamExt};
use serde_json::Value;
use tokio_tungstenite::tungstenite::Message as UpMessage;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

use super::Upstream;
use super::guard::{self, Secrets, Snapshot};
use super::handshake::{Challenge, rewrite_connect};
use crate::app::AppState;
use crate::auth::touch::Touch;
use crate::auth::{AuthUser, AuthVia};
use crate::domain::now_secs;
use crate::openclaw::{AgentSocket, socket_config};
use crate::relay::browser_close;

const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(20);
/// OpenClaw's own limit before `hello-ok`.
const MAX_CONNECT_FRAME: usize = 64 * 1024;
/// Browser frames above this are refused with 1009 (the agent takes 25 MiB).
pub const MAX_BROWSER_MESSAGE: usize = 25 * 1024 * 1024;
/// `config.get` answers awaited at once (each remembers one request id).
const MAX_PENDING_READS: usize = 32;
const SESSION_TOUCH: Duration = Duration::from_secs(60);

type BrowserSink = futures_util::stream::SplitSink<WebSocket, Message>;
type BrowserStream = futures_util::stream::SplitStream<WebSocket>;

pub async fn run(state: AppState, auth: AuthUser, mut registration: crate::relay::Registration, socket: WebSocket) {
    let (mut sink, mut stream) = socket.split();
    let user = auth.user_id.clone();
    let address = tokio::select! {
        started = state.machines.ensure_ready(&user) => match started {
            Ok(address) => address,
            Err(e) => {
                tracing::info!(user_id = %user, code = e.code, "console: the agent could not be started");
                return close(&mut sink, 1011, "your agent could not be started; open Roost to see why").await;
            }
        },
        ending = registration.revoked() => {
            let (code, reason) = ending.close_frame();
            return close(&mut sink, code, reason).await;
        }
    };
    let Some(upstream) = Upstream::for_user(&state, &user, &address) else {
        return close(&mut sink, 1011, "your agent's address is not usable").await;
    };
    let mut agent = match open(&upstream).await {
        Ok(agent) => agent,
        Err(e) => {
            tracing::warn!(user_id = %user, error = %e, "console: agent connection failed");
            return close(&mut sink, 1013, "your agent is not answering yet; retrying").await;
        }
    };
    let mut secrets = Secrets::new(
        [upstream.token.clone(), crate::agent_credentials::llm_credential(&state.secret, &user)]
            .into_iter()
            .chain(upstream.agent_secret.clone()),
    );
    match handshake(&state, &upstream, &mut agent, &mut sink, &mut stream, &mut secrets).await {
        Ok(()) => {}
        Err((code, reason)) => {
            let _ = agent.close(None).await;
            return close(&mut sink, code, reason).await;
        }
    }
    relay(&state, &auth, &mut agent, &mut sink, &mut stream, &mut secrets, &mut registration).await;
    let _ = tokio::time::timeout(Duration::from_secs(2), agent.close(None)).await;
}

async fn open(upstream: &Upstream) -> Result<AgentSocket, String> {
    // Built from the URL alone: nothing of the browser's request goes upstream.
    let mut request = upstream.ws_url.as_str().into_client_request().map_err(|e| e.to_string())?;
    let headers = request.headers_mut();
    // The Control UI connects as a webchat-mode client, which OpenClaw admits only with an
    // Origin: a loopback one, from a loopback peer (Roost is one, directly or via the sidecar).
    headers.insert("origin", "http://127.0.0.1".parse().expect("a header value"));
    if let Some(secret) = &upstream.agent_secret {
        headers.insert(provisioner::fly::AGENT_SECRET_HEADER, secret.parse().map_err(|_| "agent secret".to_string())?);
    }
    let connect = tokio_tungstenite::connect_async_with_config(request, Some(socket_config()), true);
    let (socket, _) = tokio::time::timeout(Duration::from_secs(10), connect)
        .await
        .map_err(|_| "connect timed out".to_string())?
        .map_err(|e| e.to_string())?;
    Ok(socket)
}

/// Relays the challenge, waits for the browser's `connect`, sends it as Roost's, and passes the
/// agent's answer back without its credentials.
async fn handshake(
    state: &AppState,
    upstream: &Upstream,
    agent: &mut AgentSocket,
    sink: &mut BrowserSink,
    stream: &mut BrowserStream,
    secrets: &mut Secrets,
) -> Result<(), (u16, &'static str)> {
    let exchange = async {
        let mut challenge: Option<Challenge> = None;
        let mut connect: Option<Value> = None;
        while challenge.is_none() || connect.is_none() {
            tokio::select! {
                from_agent = agent.next(), if challenge.is_none() => match from_agent {
                    Some(Ok(UpMessage::Text(text))) => {
                        let Ok(frame) = serde_json::from_str::<Value>(text.as_str()) else { continue };
                        if let Some(c) = Challenge::from_event(&frame) {
                            challenge = Some(c);
                            send(sink, secrets.scrub(text.as_str())).await.map_err(|_| (1001, "gone"))?;
                        }
                    }
                    Some(Ok(UpMessage::Close(frame))) => return Err(browser_close(frame.map(|f| f.code.into()))),
                    Some(Ok(_)) => {}
                    Some(Err(_)) | None => return Err((1013, "your agent is not answering yet; retrying")),
                },
                from_browser = stream.next(), if connect.is_none() => match from_browser {
                    Some(Ok(Message::Text(text))) => {
                        if text.len() > MAX_CONNECT_FRAME {
                            return Err((1009, "the connect request is too large"));
                        }
                        connect = Some(serde_json::from_str(text.as_str()).map_err(|_| (1008, "invalid handshake"))?);
                    }
                    Some(Ok(Message::Close(_))) | None | Some(Err(_)) => return Err((1000, "closed")),
                    Some(Ok(_)) => {}
                },
            }
        }
        let (Some(challenge), Some(connect)) = (challenge, connect) else { unreachable!("both arrived") };
        let rewritten =
            rewrite_connect(&connect, &upstream.token, state.relays.device(), &challenge).map_err(|why| {
                tracing::debug!(why, "console: connect refused");
                (1008, "invalid handshake")
            })?;
        agent
            .send(UpMessage::text(rewritten.to_string()))
            .await
            .map_err(|_| (1013, "your agent went away; retrying"))?;
        loop {
            match agent.next().await {
                Some(Ok(UpMessage::Text(text))) => {
                    let frame: Value = serde_json::from_str(text.as_str()).unwrap_or(Value::Null);
                    let answer = frame["type"] == "res" && frame["id"] == connect["id"];
                    send(sink, secrets.scrub(text.as_str())).await.map_err(|_| (1001, "gone"))?;
                    if answer {
                        return Ok(());
                    }
                }
                Some(Ok(UpMessage::Close(frame))) => return Err(browser_close(frame.map(|f| f.code.into()))),
                Some(Ok(_)) => {}
                Some(Err(_)) | None => return Err((1011, "the connection to your agent was lost")),
            }
        }
    };
    tokio::time::timeout(HANDSHAKE_TIMEOUT, exchange).await.map_err(|_| (1013, "the handshake timed out; retrying"))?
}

async fn relay(
    state: &AppState,
    auth: &AuthUser,
    agent: &mut AgentSocket,
    sink: &mut BrowserSink,
    stream: &mut BrowserStream,
    secrets: &mut Secrets,
    registration: &mut crate::relay::Registration,
) {
    let mut snapshot = Snapshot::default();
    let mut reads: HashSet<String> = HashSet::new();
    let mut last_touch = Instant::now();
    loop {
        tokio::select! {
            from_browser = stream.next() => match from_browser {
                Some(Ok(Message::Text(text))) => {
                    if text.len() > MAX_BROWSER_MESSAGE {
                        return close(sink, 1009, "message too large").await;
                    }
                    // Using the console is using the session (its idle timeout), as chat is.
                    if let AuthVia::Session { token_hash } = &auth.via
                        && last_touch.elapsed() >= SESSION_TOUCH
                    {
                        state.touches.touch(Touch::Session { token_hash: token_hash.clone(), now: now_secs() });
                        last_touch = Instant::now();
                    }
                    match check(text.as_str(), &snapshot, &mut reads) {
                        Ok(()) => if agent.send(UpMessage::text(text.as_str())).await.is_err() {
                            return close(sink, 1011, "the connection to your agent was lost").await;
                        },
                        Err(answer) => if send(sink, answer).await.is_err() { return },
                    }
                }
                Some(Ok(Message::Binary(_))) => return close(sink, 1003, "binary frames are not supported").await,
                Some(Ok(Message::Ping(_) | Message::Pong(_))) => {}
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => return,
            },
            from_agent = agent.next() => match from_agent {
                Some(Ok(UpMessage::Text(text))) => {
                    remember_read(text.as_str(), &mut snapshot, &mut reads);
                    if send(sink, secrets.scrub(text.as_str())).await.is_err() {
                        return;
                    }
                }
                Some(Ok(UpMessage::Close(frame))) => {
                    let (code, reason) = browser_close(frame.map(|f| f.code.into()));
                    return close(sink, code, reason).await;
                }
                Some(Ok(_)) => {}
                Some(Err(_)) | None => return close(sink, 1011, "the connection to your agent was lost; reconnect to resume").await,
            },
            ending = registration.revoked() => {
                let (code, reason) = ending.close_frame();
                return close(sink, code, reason).await;
            }
        }
    }
}

/// `Err(answer)` for a request Roost refuses itself.
fn check(text: &str, snapshot: &Snapshot, reads: &mut HashSet<String>) -> Result<(), String> {
    let Ok(frame) = serde_json::from_str::<Value>(text) else { return Ok(()) };
    if frame["type"] != "req" {
        return Ok(());
    }
    let method = frame["method"].as_str().unwrap_or_default();
    if method == "config.get"
        && let Some(id) = frame["id"].as_str()
        && reads.len() < MAX_PENDING_READS
    {
        reads.insert(id.to_string());
    }
    guard::check_write(method, &frame["params"], snapshot).map_err(|message| guard::refusal(&frame["id"], &message))
}

fn remember_read(text: &str, snapshot: &mut Snapshot, reads: &mut HashSet<String>) {
    if reads.is_empty() || !text.contains("\"res\"") {
        return;
    }
    let Ok(frame) = serde_json::from_str::<Value>(text) else { return };
    if frame["type"] == "res"
        && let Some(id) = frame["id"].as_str()
        && reads.remove(id)
        && frame["ok"] == true
    {
        *snapshot = Snapshot::from_get_payload(&frame["payload"]);
    }
}

async fn send(sink: &mut BrowserSink, text: String) -> Result<(), ()> {
    sink.send(Message::Text(text.into())).await.map_err(|_| ())
}

async fn close(sink: &mut BrowserSink, code: u16, reason: &'static str) {
    let _ = sink.send(Message::Close(Some(CloseFrame { code, reason: reason.into() }))).await;
    let _ = sink.close().await;
}
