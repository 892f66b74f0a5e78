//! A stateful fake of Discord's REST API (`/api/v10`): the calls Roost makes to check a bot
//! token (`GET /users/@me`, `GET /applications/@me`), the DM calls a bot replies with, and the
//! gateway WebSocket on the same origin ([`crate::discord_gateway`]). Bot tokens work only with
//! `Authorization: Bot <token>`; a user account's token works only bare (and says `bot:false`),
//! as on Discord. Revoked tokens, 429 with `retry_after` and hangs can be injected.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use base64::Engine;
use serde_json::{Value, json};
use tokio::task::JoinHandle;

/// Message Content intent, granted (`GATEWAY_MESSAGE_CONTENT`).
pub const MESSAGE_CONTENT: u64 = 1 << 18;
/// Message Content intent, for unverified apps (`GATEWAY_MESSAGE_CONTENT_LIMITED`).
pub const MESSAGE_CONTENT_LIMITED: u64 = 1 << 19;

#[derive(Debug, Clone)]
pub enum Fault {
    /// 429 `{"message":"You are being rate limited.","retry_after":…,"global":false}`.
    TooManyRequests {
        retry_after: f64,
    },
    Hang(Duration),
}

#[derive(Debug, Clone)]
pub(crate) struct Account {
    pub(crate) user_id: String,
    pub(crate) username: String,
    pub(crate) bot: bool,
    pub(crate) revoked: bool,
    pub(crate) app_id: String,
    pub(crate) app_flags: u64,
    owner_id: String,
}

#[derive(Default)]
pub(crate) struct Inner {
    pub(crate) tokens: HashMap<String, Account>,
    /// Where the fake listens (the gateway URL it hands out is on it).
    pub(crate) addr: Option<SocketAddr>,
    pub(crate) gateway: crate::discord_gateway::GatewayState,
    /// (method, path) of every request no route knows, for tests to show.
    unknown: Vec<String>,
    /// DMs delivered to bots so far (their message ids).
    messages_in: u64,
    faults: VecDeque<Fault>,
    /// (path, authorization scheme) of every request.
    requests: Vec<(String, String)>,
    /// DM channel id -> recipient user id.
    dm_channels: HashMap<String, String>,
    /// (recipient user id, content) of every message the bots sent.
    sent: Vec<(String, String)>,
}

pub(crate) type Shared = Arc<Mutex<Inner>>;

pub struct FakeDiscord {
    state: Shared,
    addr: SocketAddr,
    server: JoinHandle<()>,
}

impl FakeDiscord {
    pub async fn spawn() -> Self {
        let state: Shared = Arc::default();
        let app = Router::new()
            .route("/api/v10/users/@me", get(users_me))
            .route("/api/v10/applications/@me", get(applications_me))
            .route("/api/v10/users/@me/channels", axum::routing::post(open_dm))
            .route("/api/v10/channels/{channel}/messages", axum::routing::post(create_message))
            .route("/api/v10/channels/{channel}", get(get_channel))
            .route("/api/v10/channels/{channel}/typing", axum::routing::post(typing))
            .route("/api/v10/applications/{app}/commands", get(commands).put(commands))
            .route("/api/v10/gateway/bot", get(crate::discord_gateway::gateway_bot))
            .route("/", get(crate::discord_gateway::upgrade))
            .fallback(unknown)
            .with_state(state.clone());
        let (addr, server) = crate::serve_on_loopback(app, "fake discord").await;
        state.lock().unwrap().addr = Some(addr);
        Self { state, addr, server }
    }

    /// The API base Roost is given (`http://127.0.0.1:PORT/api/v10`).
    pub fn base_url(&self) -> String {
        format!("http://{}/api/v10", self.addr)
    }

    /// Registers a bot whose application has `flags`; returns its token.
    pub fn add_bot(&self, username: &str, flags: u64) -> String {
        self.add(username, true, flags)
    }

    /// A user account's token (what a self-bot would use).
    pub fn add_user_token(&self, username: &str) -> String {
        self.add(username, false, 0)
    }

    fn add(&self, username: &str, bot: bool, app_flags: u64) -> String {
        let mut inner = self.state.lock().unwrap();
        let n = inner.tokens.len() as u64;
        let user_id = (1_198_622_483_471_925_248u64 + n * 4_194_304).to_string();
        let first = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&user_id);
        let rest = uuid::Uuid::new_v4().simple().to_string();
        let token = format!("{first}.{}.{}", &rest[..6], &format!("{rest}{}", uuid::Uuid::new_v4().simple())[6..38]);
        let account = Account {
            user_id: user_id.clone(),
            username: username.to_string(),
            bot,
            revoked: false,
            app_id: user_id,
            app_flags,
            owner_id: (900_000_000_000_000_000u64 + n).to_string(),
        };
        inner.tokens.insert(token.clone(), account);
        token
    }

    pub fn revoke(&self, token: &str) {
        if let Some(a) = self.state.lock().unwrap().tokens.get_mut(token) {
            a.revoked = true;
        }
    }

    pub fn set_flags(&self, token: &str, flags: u64) {
        if let Some(a) = self.state.lock().unwrap().tokens.get_mut(token) {
            a.app_flags = flags;
        }
    }

    /// The application owner's user id for this token (the "Only me" allowlist entry).
    pub fn owner_id(&self, token: &str) -> Option<String> {
        self.state.lock().unwrap().tokens.get(token).map(|a| a.owner_id.clone())
    }

    pub fn fail_next(&self, fault: Fault) {
        self.state.lock().unwrap().faults.push_back(fault);
    }

    /// (recipient user id, content) of every DM the bots sent.
    pub fn sent_dms(&self) -> Vec<(String, String)> {
        self.state.lock().unwrap().sent.clone()
    }

    /// A user DMs the bot: MESSAGE_CREATE on every open gateway connection identified with
    /// `token`. Returns how many connections it went to.
    pub fn deliver_dm(&self, token: &str, from_id: &str, from_name: &str, content: &str) -> usize {
        let mut inner = self.state.lock().unwrap();
        let channel_id = match inner.dm_channels.iter().find(|(_, to)| to.as_str() == from_id) {
            Some((id, _)) => id.clone(),
            None => {
                let id = (1_300_000_000_000_000_000u64 + inner.dm_channels.len() as u64).to_string();
                inner.dm_channels.insert(id.clone(), from_id.to_string());
                id
            }
        };
        inner.messages_in += 1;
        let message_id = (1_400_000_000_000_000_000u64 + inner.messages_in).to_string();
        let message = json!({
            "id": message_id, "channel_id": channel_id, "type": 0, "content": content,
            "author": { "id": from_id, "username": from_name, "discriminator": "0", "global_name": from_name, "avatar": null },
            "timestamp": "2026-12-01T12:00:00.000000+00:00", "edited_timestamp": null, "tts": false,
            "mention_everyone": false, "mentions": [], "mention_roles": [], "attachments": [], "embeds": [],
            "pinned": false, "flags": 0,
        });
        let targets: Vec<usize> = inner
            .gateway
            .connections
            .iter()
            .enumerate()
            .filter(|(_, c)| c.open && c.token.as_deref() == Some(token))
            .map(|(i, _)| i)
            .collect();
        let mut delivered = 0;
        for i in targets {
            if let Some(tx) = inner.gateway.pushers.get(&i)
                && tx.send(crate::discord_gateway::Push::Dispatch("MESSAGE_CREATE", message.clone())).is_ok()
            {
                delivered += 1;
            }
        }
        delivered
    }

    /// Every gateway connection so far, in order.
    pub fn gateway_connections(&self) -> Vec<crate::discord_gateway::Connection> {
        self.state.lock().unwrap().gateway.connections.clone()
    }

    /// Open gateway connections identified with `token`.
    pub fn gateway_open(&self, token: &str) -> usize {
        let inner = self.state.lock().unwrap();
        inner.gateway.connections.iter().filter(|c| c.open && c.token.as_deref() == Some(token)).count()
    }

    /// The next IDENTIFY is answered by closing with `code` (4004 authentication failed, 4014
    /// disallowed intents).
    pub fn close_next_identify(&self, code: u16) {
        self.state.lock().unwrap().gateway.close_next_identify = Some(code);
    }

    /// Closes every open connection of `token` with `code`, as Discord does when it ends a session.
    pub fn close_gateway(&self, token: &str, code: u16) {
        let inner = self.state.lock().unwrap();
        for (i, c) in inner.gateway.connections.iter().enumerate() {
            if c.open
                && c.token.as_deref() == Some(token)
                && let Some(tx) = inner.gateway.pushers.get(&i)
            {
                let _ = tx.send(crate::discord_gateway::Push::Close(code, "Closed by the fake."));
            }
        }
    }

    /// (method, path) of requests no route of the fake knows.
    pub fn unknown_requests(&self) -> Vec<String> {
        self.state.lock().unwrap().unknown.clone()
    }

    /// How many requests arrived (for rate-limit tests).
    pub fn request_count(&self) -> usize {
        self.state.lock().unwrap().requests.len()
    }
}

impl Drop for FakeDiscord {
    fn drop(&mut self) {
        self.server.abort();
    }
}

pub(crate) fn discord_error(status: StatusCode, message: &str, code: u64) -> Response {
    (status, axum::Json(json!({ "message": message, "code": code }))).into_response()
}

/// The account the request authenticates as, or the error Discord gives.
pub(crate) async fn authenticate(state: &Shared, headers: &HeaderMap, path: &str) -> Result<Account, Response> {
    let auth = headers.get("authorization").and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
    let (scheme, token) = match auth.split_once(' ') {
        Some(("Bot", t)) => ("Bot", t.to_string()),
        Some(("Bearer", t)) => ("Bearer", t.to_string()),
        _ => ("none", auth.clone()),
    };
    let fault = {
        let mut inner = state.lock().unwrap();
        inner.requests.push((path.to_string(), scheme.to_string()));
        inner.faults.pop_front()
    };
    match fault {
        Some(Fault::TooManyRequests { retry_after }) => {
            let body = json!({ "message": "You are being rate limited.", "retry_after": retry_after, "global": false });
            let mut res = (StatusCode::TOO_MANY_REQUESTS, axum::Json(body)).into_response();
            let h = res.headers_mut();
            h.insert("retry-after", format!("{}", retry_after.ceil() as u64).parse().unwrap());
            h.insert("x-ratelimit-scope", "user".parse().unwrap());
            return Err(res);
        }
        Some(Fault::Hang(d)) => tokio::time::sleep(d).await,
        None => {}
    }
    let account = state.lock().unwrap().tokens.get(&token).cloned();
    match account {
        Some(a) if !a.revoked && a.bot == (scheme == "Bot") => Ok(a),
        _ => Err(discord_error(StatusCode::UNAUTHORIZED, "401: Unauthorized", 0)),
    }
}

async fn unknown(State(state): State<Shared>, method: axum::http::Method, uri: axum::http::Uri) -> Response {
    state.lock().unwrap().unknown.push(format!("{method} {}", uri.path()));
    discord_error(StatusCode::NOT_FOUND, "404: Not Found", 0)
}

async fn get_channel(
    State(state): State<Shared>,
    axum::extract::Path(channel): axum::extract::Path<String>,
    headers: HeaderMap,
) -> Response {
    match authenticate(&state, &headers, "/channels/{id}").await {
        Ok(a) if a.bot => {
            let recipient = state.lock().unwrap().dm_channels.get(&channel).cloned();
            match recipient {
                Some(to) => axum::Json(json!({ "id": channel, "type": 1, "last_message_id": null,
                    "recipients": [{ "id": to, "username": "someone", "discriminator": "0" }] }))
                .into_response(),
                None => discord_error(StatusCode::NOT_FOUND, "Unknown Channel", 10003),
            }
        }
        Ok(_) => discord_error(StatusCode::UNAUTHORIZED, "401: Unauthorized", 0),
        Err(res) => res,
    }
}

/// The bot's slash commands: none registered, and a bulk overwrite answers what it was given.
async fn commands(State(state): State<Shared>, headers: HeaderMap, body: axum::body::Bytes) -> Response {
    match authenticate(&state, &headers, "/applications/{id}/commands").await {
        Ok(a) if a.bot => {
            let given: Value = serde_json::from_slice(&body).unwrap_or(json!([]));
            axum::Json(if given.is_array() { given } else { json!([]) }).into_response()
        }
        Ok(_) => discord_error(StatusCode::UNAUTHORIZED, "401: Unauthorized", 0),
        Err(res) => res,
    }
}

async fn typing(State(state): State<Shared>, headers: HeaderMap) -> Response {
    match authenticate(&state, &headers, "/channels/{id}/typing").await {
        Ok(a) if a.bot => StatusCode::NO_CONTENT.into_response(),
        Ok(_) => discord_error(StatusCode::UNAUTHORIZED, "401: Unauthorized", 0),
        Err(res) => res,
    }
}

async fn users_me(State(state): State<Shared>, headers: HeaderMap) -> Response {
    match authenticate(&state, &headers, "/users/@me").await {
        Ok(a) => axum::Json(json!({
            "id": a.user_id, "username": a.username, "discriminator": "0", "global_name": Value::Null,
            "avatar": Value::Null, "bot": a.bot, "mfa_enabled": false, "flags": 0,
        }))
        .into_response(),
        Err(res) => res,
    }
}

async fn applications_me(State(state): State<Shared>, headers: HeaderMap) -> Response {
    match authenticate(&state, &headers, "/applications/@me").await {
        Ok(a) if a.bot => axum::Json(json!({
            "id": a.app_id, "name": a.username, "description": "", "bot_public": true,
            "bot_require_code_grant": false, "flags": a.app_flags, "flags_new": a.app_flags.to_string(),
            "owner": { "id": a.owner_id, "username": "owner" }, "approximate_guild_count": 0,
        }))
        .into_response(),
        Ok(_) => discord_error(StatusCode::UNAUTHORIZED, "401: Unauthorized", 0),
        Err(res) => res,
    }
}

async fn open_dm(State(state): State<Shared>, headers: HeaderMap, body: axum::body::Bytes) -> Response {
    match authenticate(&state, &headers, "/users/@me/channels").await {
        Ok(a) if a.bot => {
            let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
            let Some(recipient) = body["recipient_id"].as_str() else {
                return discord_error(StatusCode::BAD_REQUEST, "Invalid Form Body", 50035);
            };
            let mut inner = state.lock().unwrap();
            let id = (1_300_000_000_000_000_000u64 + inner.dm_channels.len() as u64).to_string();
            inner.dm_channels.insert(id.clone(), recipient.to_string());
            axum::Json(json!({ "id": id, "type": 1, "recipients": [{ "id": recipient }] })).into_response()
        }
        Ok(_) => discord_error(StatusCode::UNAUTHORIZED, "401: Unauthorized", 0),
        Err(res) => res,
    }
}

async fn create_message(
    State(state): State<Shared>,
    axum::extract::Path(channel): axum::extract::Path<String>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    match authenticate(&state, &headers, "/channels/{id}/messages").await {
        Ok(a) if a.bot => {
            let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
            let mut inner = state.lock().unwrap();
            let Some(recipient) = inner.dm_channels.get(&channel).cloned() else {
                return discord_error(StatusCode::NOT_FOUND, "Unknown Channel", 10003);
            };
            let content = body["content"].as_str().unwrap_or_default().to_string();
            inner.sent.push((recipient, content.clone()));
            axum::Json(json!({ "id": "1", "channel_id": channel, "content": content })).into_response()
        }
        Ok(_) => discord_error(StatusCode::UNAUTHORIZED, "401: Unauthorized", 0),
        Err(res) => res,
    }
}
