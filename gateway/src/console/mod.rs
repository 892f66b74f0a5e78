//! `/agent/*`: the user's own OpenClaw Control UI on Roost's origin, behind the Roost login.
//! The browser never holds a credential of the agent's: HTTP goes through [`proxy`], the
//! WebSocket through [`socket`], whose handshake Roost answers for.

mod guard;
mod handshake;
mod proxy;
mod socket;

use std::time::Duration;

use axum::extract::ws::WebSocketUpgrade;
use axum::extract::{FromRequestParts, Request, State};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};

use crate::app::AppState;
use crate::auth::SessionUser;
use crate::domain::UserId;
use crate::error::AppError;

/// Where a user's agent is, and what Roost presents to it.
pub struct Upstream {
    /// `host:port` of the agent (or of its Fly sidecar).
    host_port: String,
    /// The agent's WebSocket, at the Control UI's base path.
    ws_url: String,
    token: String,
    agent_secret: Option<String>,
}

impl Upstream {
    fn for_user(state: &AppState, user: &UserId, address: &str) -> Option<Self> {
        let url = url::Url::parse(address).ok()?;
        let host = url.host_str()?;
        let port = url.port_or_known_default()?;
        let host_port = if host.contains(':') { format!("[{host}]:{port}") } else { format!("{host}:{port}") };
        let scheme = url.scheme();
        Some(Self {
            ws_url: format!("{scheme}://{host_port}{}", provisioner::CONTROL_UI_BASE_PATH),
            host_port,
            token: crate::agent_credentials::gateway_token(&state.secret, user),
            agent_secret: state.relays.agent_secret(user),
        })
    }
}

pub async fn handle(State(state): State<AppState>, request: Request) -> Response {
    let (mut parts, body) = request.into_parts();
    let wants_page = wants_html(&parts.headers);
    let user = match SessionUser::from_request_parts(&mut parts, &state).await {
        Ok(SessionUser(user)) => user,
        // A page opened while signed out goes to sign-in; anything else gets the JSON error.
        Err(e) if e.status() == StatusCode::UNAUTHORIZED && wants_page && parts.method == Method::GET => {
            return Redirect::to("/login").into_response();
        }
        Err(e) => return e.into_response(),
    };
    if parts.headers.contains_key(header::UPGRADE) {
        return upgrade(state, user, parts).await.unwrap_or_else(IntoResponse::into_response);
    }
    let address = match state.machines.address_if_ready(&user.user_id).await {
        Some(address) => address,
        None if wants_page && parts.method == Method::GET => return waiting_page(),
        // A script or image the open console asks for while its agent wakes waits for it, so
        // the page does not break on a failed import.
        None if matches!(parts.method, Method::GET | Method::HEAD) => match wake(&state, &user.user_id).await {
            Some(address) => address,
            None => return starting().into_response(),
        },
        None => {
            state.machines.prewarm(&user.user_id);
            return starting().into_response();
        }
    };
    let Some(upstream) = Upstream::for_user(&state, &user.user_id, &address) else {
        return AppError::internal(anyhow::anyhow!("unusable agent address")).into_response();
    };
    proxy::forward(&upstream, Request::from_parts(parts, body)).await.unwrap_or_else(IntoResponse::into_response)
}

async fn upgrade(
    state: AppState,
    user: crate::auth::AuthUser,
    mut parts: axum::http::request::Parts,
) -> Result<Response, AppError> {
    let ws = WebSocketUpgrade::from_request_parts(&mut parts, &state)
        .await
        .map_err(|e| AppError::bad_request("websocket_required", e.body_text()))?;
    // Cross-site WebSocket hijacking: only Roost's own pages may open it.
    let allowed =
        parts.headers.get(header::ORIGIN).is_some_and(|o| o.to_str().is_ok_and(|o| state.site.origin_allowed(o)));
    if !allowed {
        return Err(AppError::forbidden("cross_origin", "Only Roost's own pages may open the agent console."));
    }
    let Some(registration) = state.relays.register(&user) else {
        return Err(AppError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "too_many_sockets",
            "This account has too many connections open. Close a tab and try again.",
        )
        .retry_after(5));
    };
    let ws = ws
        .max_message_size(socket::MAX_BROWSER_MESSAGE * 2)
        .max_frame_size(socket::MAX_BROWSER_MESSAGE * 2)
        .read_buffer_size(16 * 1024)
        .write_buffer_size(16 * 1024);
    Ok(ws.on_upgrade(move |socket| socket::run(state, user, registration, socket)))
}

/// How long a read waits for a waking agent (the request timeout is 30 s).
const WAKE_WAIT: Duration = Duration::from_secs(20);

/// Starts the agent if needed and waits (at most [`WAKE_WAIT`]) until it is ready. The start
/// goes on after the wait; the waiting page or the next request picks it up.
async fn wake(state: &AppState, user: &UserId) -> Option<String> {
    let (machines, user) = (state.machines.clone(), user.clone());
    let start = tokio::spawn(async move { machines.ensure_ready(&user).await });
    match tokio::time::timeout(WAKE_WAIT, start).await {
        Ok(Ok(Ok(address))) => Some(address),
        _ => None,
    }
}

fn starting() -> AppError {
    AppError::unavailable("agent_starting", "Your agent is starting. Try again in a few seconds.", 5)
}

fn wants_html(headers: &HeaderMap) -> bool {
    headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|accept| accept.split(',').any(|part| part.trim().starts_with("text/html")))
}

/// While the agent wakes: Roost's page, which shows the start's stages and reloads when ready.
fn waiting_page() -> Response {
    let mut response = crate::routes::web_file("agent-waiting.html", StatusCode::OK)
        .unwrap_or_else(|| (StatusCode::SERVICE_UNAVAILABLE, "Your agent is starting.").into_response());
    response.headers_mut().insert(header::CACHE_CONTROL, header::HeaderValue::from_static("no-store"));
    response
}
