//! A fake agent for the console tests: OpenClaw's Control UI over HTTP at `/agent/*` and its
//! WebSocket at `/agent` (challenge, a `connect` whose token and Ed25519 device proof it checks
//! the way OpenClaw does, `hello-ok` with a device token, config reads and writes), recording
//! everything it is sent.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_lc_rs::signature::{ED25519, UnparsedPublicKey};
use axum::Router;
use axum::body::Body;
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use base64::Engine;
use futures_util::StreamExt;
use serde_json::{Value, json};
use tokio::sync::Notify;

pub const DEVICE_TOKEN: &str = "fake-console-device-token-0001";

#[derive(Default)]
pub struct Seen {
    /// Headers of every plain HTTP request.
    pub http: Mutex<Vec<(String, HeaderMap)>>,
    /// Headers of every WebSocket upgrade.
    pub upgrades: Mutex<Vec<HeaderMap>>,
    /// Every `connect` as it arrived, and whether its proof verified.
    pub connects: Mutex<Vec<(Value, bool)>>,
    /// Every request after `hello-ok`, as (method, params).
    pub requests: Mutex<Vec<(String, Value)>>,
    /// Lets `/agent/stream` send its second half.
    pub release: Notify,
    /// How often `/agent/cut-once.js` was asked for (the first answer is cut off midway).
    pub cut_requests: std::sync::atomic::AtomicUsize,
}

pub struct ConsoleFake {
    pub addr: SocketAddr,
    pub seen: Arc<Seen>,
    server: Mutex<tokio::task::JoinHandle<()>>,
}

impl Drop for ConsoleFake {
    fn drop(&mut self) {
        self.server.lock().unwrap().abort();
    }
}

fn router(seen: Arc<Seen>) -> Router {
    Router::new()
        .route("/agent", any(page))
        .route("/agent/", any(page))
        .route("/agent/echo", any(echo))
        .route("/agent/stream", any(stream))
        .route("/agent/cut-once.js", any(cut_once))
        .fallback(any(unknown))
        .with_state(seen)
}

impl ConsoleFake {
    pub async fn spawn() -> Self {
        let seen = Arc::new(Seen::default());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let app = router(seen.clone());
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Self { addr, seen, server: Mutex::new(server) }
    }

    /// Stops listening (connections are refused, as while OpenClaw restarts its gateway) and
    /// listens again on the same port after `down`.
    pub fn restart(&self, down: Duration) {
        let mut server = self.server.lock().unwrap();
        server.abort();
        let (addr, app) = (self.addr, router(self.seen.clone()));
        *server = tokio::spawn(async move {
            tokio::time::sleep(down).await;
            let listener = tokio::net::TcpListener::bind(addr).await.expect("the fake listens again");
            let _ = axum::serve(listener, app).await;
        });
    }

    pub fn ws_url(&self) -> String {
        format!("ws://{}/", self.addr)
    }

    pub fn http_seen(&self, path: &str) -> Vec<HeaderMap> {
        self.seen.http.lock().unwrap().iter().filter(|(p, _)| p == path).map(|(_, h)| h.clone()).collect()
    }

    pub fn connects(&self) -> Vec<(Value, bool)> {
        self.seen.connects.lock().unwrap().clone()
    }

    pub fn methods(&self) -> Vec<String> {
        self.seen.requests.lock().unwrap().iter().map(|(m, _)| m.clone()).collect()
    }
}

/// Any other path is recorded too, so a test can see that nothing reached the agent.
async fn unknown(State(seen): State<Arc<Seen>>, request: Request) -> StatusCode {
    record(&seen, &request);
    StatusCode::NOT_FOUND
}

fn record(seen: &Seen, request: &Request) {
    seen.http.lock().unwrap().push((request.uri().path().to_string(), request.headers().clone()));
}

async fn page(
    State(seen): State<Arc<Seen>>,
    ws: Result<WebSocketUpgrade, axum::extract::ws::rejection::WebSocketUpgradeRejection>,
    request: Request,
) -> Response {
    if let Ok(ws) = ws {
        seen.upgrades.lock().unwrap().push(request.headers().clone());
        return ws.on_upgrade(move |socket| agent_socket(seen, socket));
    }
    record(&seen, &request);
    (
        StatusCode::OK,
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::SET_COOKIE, "openclaw=1; Path=/"),
            (header::CONTENT_SECURITY_POLICY, "default-src 'self'; script-src 'self' 'sha256-fake'"),
        ],
        "<!doctype html><title>OpenClaw Control</title>",
    )
        .into_response()
}

async fn echo(State(seen): State<Arc<Seen>>, request: Request) -> Response {
    record(&seen, &request);
    Response::new(Body::new(request.into_body()))
}

/// A 64-byte script whose first answer breaks off after 8 bytes, as when the agent restarts.
async fn cut_once(State(seen): State<Arc<Seen>>) -> Response {
    let first = seen.cut_requests.fetch_add(1, std::sync::atomic::Ordering::SeqCst) == 0;
    let script = bytes::Bytes::from_static(b"export const ok = true; // padding padding padding padding pad\n");
    let len = script.len();
    // The break comes after the head and the first bytes are on their way.
    let body = futures_util::stream::unfold(0, move |step| {
        let script = script.clone();
        async move {
            match (step, first) {
                (0, true) => Some((Ok(script.slice(..8)), 1)),
                (1, true) => {
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    Some((Err(std::io::Error::other("the agent restarted")), 2))
                }
                (0, false) => Some((Ok(script), 2)),
                _ => None,
            }
        }
    });
    Response::builder()
        .header(header::CONTENT_TYPE, "text/javascript")
        .header(header::CONTENT_LENGTH, len)
        .body(Body::from_stream(body))
        .unwrap()
}

async fn stream(State(seen): State<Arc<Seen>>, request: Request) -> Response {
    record(&seen, &request);
    let body = futures_util::stream::unfold(0, move |step| {
        let seen = seen.clone();
        async move {
            match step {
                0 => Some((Ok::<_, std::io::Error>(bytes::Bytes::from_static(b"first\n")), 1)),
                1 => {
                    seen.release.notified().await;
                    Some((Ok(bytes::Bytes::from_static(b"last\n")), 2))
                }
                _ => None,
            }
        }
    });
    Response::new(Body::from_stream(body))
}

fn b64(s: &str) -> Vec<u8> {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(s).unwrap_or_default()
}

/// OpenClaw's check (connect-device-proof): id = sha256(raw key), v3 payload, challenge nonce.
fn proof_verifies(params: &Value, nonce: &str, ts: i64) -> bool {
    let device = &params["device"];
    let client = &params["client"];
    let scopes: Vec<&str> = params["scopes"].as_array().into_iter().flatten().filter_map(Value::as_str).collect();
    let key = b64(device["publicKey"].as_str().unwrap_or_default());
    let id = hex::encode(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, &key));
    let payload = format!(
        "v3|{id}|{}|{}|{}|{}|{ts}|{}|{nonce}|{}|{}",
        client["id"].as_str().unwrap_or_default(),
        client["mode"].as_str().unwrap_or_default(),
        params["role"].as_str().unwrap_or("operator"),
        scopes.join(","),
        params["auth"]["token"].as_str().unwrap_or_default(),
        client["platform"].as_str().unwrap_or_default().trim().to_lowercase(),
        client["deviceFamily"].as_str().unwrap_or_default().trim().to_lowercase(),
    );
    device["id"] == id.as_str()
        && device["nonce"] == nonce
        && device["signedAt"] == ts
        && UnparsedPublicKey::new(&ED25519, &key)
            .verify(payload.as_bytes(), &b64(device["signature"].as_str().unwrap_or_default()))
            .is_ok()
}

async fn agent_socket(seen: Arc<Seen>, mut socket: WebSocket) {
    let nonce = uuid::Uuid::new_v4().to_string();
    let ts = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as i64;
    let challenge = json!({ "type": "event", "event": "connect.challenge", "payload": { "nonce": nonce, "ts": ts } });
    if socket.send(Message::Text(challenge.to_string().into())).await.is_err() {
        return;
    }
    let Some(Ok(Message::Text(text))) = socket.next().await else { return };
    let connect: Value = serde_json::from_str(text.as_str()).unwrap_or(Value::Null);
    let params = &connect["params"];
    let verified = proof_verifies(params, &nonce, ts);
    seen.connects.lock().unwrap().push((connect.clone(), verified));
    let token = params["auth"]["token"].as_str().unwrap_or_default().to_string();
    if !verified {
        let error = json!({ "type": "res", "id": connect["id"], "ok": false, "error": { "code": "INVALID_REQUEST", "message": "device signature invalid" } });
        let _ = socket.send(Message::Text(error.to_string().into())).await;
        let _ = socket
            .send(Message::Close(Some(CloseFrame { code: 1008, reason: "device signature invalid".into() })))
            .await;
        return;
    }
    let hello = json!({ "type": "res", "id": connect["id"], "ok": true, "payload": { "type": "hello-ok", "protocol": 4,
        "snapshot": { "sessionDefaults": { "modelConfigured": true } },
        "auth": { "method": "token", "role": "operator", "scopes": params["scopes"], "deviceToken": DEVICE_TOKEN, "issuedAtMs": ts },
        "policy": { "maxPayload": 26214400, "tickIntervalMs": 30000 } } });
    if socket.send(Message::Text(hello.to_string().into())).await.is_err() {
        return;
    }
    let config = json!({ "gateway": { "mode": "local", "bind": "loopback", "port": 18789, "auth": { "mode": "token" },
                                      "controlUi": { "enabled": true, "basePath": "/agent" } },
                         "ui": { "assistant": { "name": "Claw" } } });
    while let Some(Ok(message)) = socket.next().await {
        let Message::Text(text) = message else { continue };
        let frame: Value = serde_json::from_str(text.as_str()).unwrap_or(Value::Null);
        let method = frame["method"].as_str().unwrap_or_default().to_string();
        seen.requests.lock().unwrap().push((method.clone(), frame["params"].clone()));
        let payload = match method.as_str() {
            "config.get" => json!({ "config": config, "parsed": config, "hash": "h1" }),
            // A careless agent answer: the token it was given, and its device token again.
            "status.leaky" => json!({ "echo": format!("token={token} device={DEVICE_TOKEN}") }),
            "test.close4001" => {
                let _ = socket
                    .send(Message::Close(Some(CloseFrame { code: 4001, reason: "gateway auth changed".into() })))
                    .await;
                return;
            }
            _ => json!({ "method": method }),
        };
        let res = json!({ "type": "res", "id": frame["id"], "ok": true, "payload": payload });
        if socket.send(Message::Text(res.to_string().into())).await.is_err() {
            return;
        }
    }
}
