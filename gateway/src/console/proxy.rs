//! HTTP to the user's agent under `/agent/`, on a fresh hyper connection per request: the
//! browser's credentials and forwarding headers stay here, bodies stream both ways.

use std::time::Duration;

use axum::body::Body;
use axum::http::header::{self, HeaderMap, HeaderName, HeaderValue};
use axum::http::{Method, Request, Response, StatusCode};
use http_body_util::BodyExt;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

use super::Upstream;
use crate::error::AppError;

const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Below the request timeout (30 s), so a stuck agent is answered in words.
const RESPONSE_HEAD_TIMEOUT: Duration = Duration::from_secs(20);
/// How long a read (GET, HEAD) keeps trying an agent that refuses connections.
const READ_RETRY_WITHIN: Duration = Duration::from_secs(8);
const READ_RETRY_PAUSE: Duration = Duration::from_millis(250);
/// A read answer up to this size is held whole before it is passed on (the Control UI's
/// largest script is about 1 MB).
const MAX_WHOLE_READ: usize = 8 * 1024 * 1024;
/// The Control UI sends small JSON and the odd upload; nothing near this.
pub const MAX_REQUEST_BODY: usize = 32 * 1024 * 1024;

/// Hop-by-hop headers (RFC 9110 §7.6.1) and the ones only the hop from the browser may carry.
const DROPPED: &[&str] = &[
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "host",
    "cookie",
    "authorization",
    "origin",
    "forwarded",
    "x-real-ip",
    "x-api-key",
];

/// What goes upstream: the browser's headers less credentials, forwarding and hop-by-hop ones.
pub fn upstream_headers(browser: &HeaderMap) -> HeaderMap {
    let named_by_connection: Vec<String> = browser
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|name| name.trim().to_ascii_lowercase())
        .collect();
    let mut out = HeaderMap::new();
    for (name, value) in browser {
        let n = name.as_str();
        if DROPPED.contains(&n)
            || n.starts_with("x-forwarded-")
            || n.starts_with("x-roost-")
            || n.starts_with("fly-")
            || named_by_connection.iter().any(|c| c == n)
        {
            continue;
        }
        out.append(name.clone(), value.clone());
    }
    out
}

/// What goes back: hop-by-hop headers dropped, and no cookie of the agent's on Roost's origin.
fn browser_headers(upstream: &mut HeaderMap) {
    let named: Vec<String> = upstream
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|name| name.trim().to_ascii_lowercase())
        .collect();
    for name in DROPPED.iter().copied().chain(["set-cookie"]).chain(named.iter().map(String::as_str)) {
        if let Ok(name) = HeaderName::try_from(name) {
            upstream.remove(name);
        }
    }
}

/// The request's path and query if it stays inside the console: under `/agent`, with no dot
/// segment (plain or percent-encoded) and no encoded slash or backslash. Reads carry the agent's
/// own token, so a path that the agent would resolve outside `/agent/` must never get through.
fn console_path(path_and_query: &str) -> Option<&str> {
    let path = path_and_query.split_once('?').map_or(path_and_query, |(path, _)| path);
    let inside = path == provisioner::CONTROL_UI_BASE_PATH
        || path.strip_prefix(provisioner::CONTROL_UI_BASE_PATH).is_some_and(|rest| rest.starts_with('/'));
    let lowered = path.to_ascii_lowercase();
    let escapes = ["%2f", "%5c", "\\", "%00"].iter().any(|bad| lowered.contains(bad))
        || lowered.split('/').any(|segment| matches!(segment.replace("%2e", ".").as_str(), "." | ".."));
    (inside && !escapes).then_some(path_and_query)
}

pub async fn forward(upstream: &Upstream, request: Request<Body>) -> Result<Response<Body>, AppError> {
    let (parts, body) = request.into_parts();
    let path = parts.uri.path_and_query().map_or("/", |p| p.as_str());
    let path = console_path(path)
        .ok_or_else(|| {
            AppError::bad_request("invalid_path", "This address is outside your agent console. Open /agent/ instead.")
        })?
        .to_string();
    let mut headers = upstream_headers(&parts.headers);
    let host = HeaderValue::from_str(&upstream.host_port).map_err(|_| unreachable_agent())?;
    headers.insert(header::HOST, host);
    if let Some(secret) = &upstream.agent_secret
        && let Ok(value) = HeaderValue::from_str(secret)
    {
        headers.insert(provisioner::fly::AGENT_SECRET_HEADER, value);
    }
    let read = matches!(parts.method, Method::GET | Method::HEAD);
    if read && let Ok(bearer) = HeaderValue::from_str(&format!("Bearer {}", upstream.token)) {
        // The Control UI's own reads (avatars, media) want the gateway token it does not have.
        headers.insert(header::AUTHORIZATION, bearer);
    }
    let build = |body: UpstreamBody| {
        let mut outgoing =
            Request::builder().method(parts.method.clone()).uri(path.as_str()).body(body).map_err(|_| {
                AppError::bad_request("invalid_request", "This request cannot be passed to your agent.")
            })?;
        *outgoing.headers_mut() = headers.clone();
        Ok::<_, AppError>(outgoing)
    };
    if read {
        // An agent restarting its gateway (after a settings change) refuses connections, or cuts
        // an answer off, for a few seconds; the page's lazily loaded scripts wait that out
        // rather than fail. A script or style of known, bounded size is read whole first, so
        // one cut off midway is asked for again instead of reaching the page broken.
        let retry_until = tokio::time::Instant::now() + READ_RETRY_WITHIN;
        loop {
            let outgoing = build(http_body_util::Empty::new().map_err(|never| match never {}).boxed_unsync())?;
            let attempt = match send(upstream, outgoing).await {
                Ok(response) if bounded(&response) => read_whole(response).await,
                other => other.map(|response| response.map(Body::new)),
            };
            match attempt {
                Err(Attempt::Unreachable) if tokio::time::Instant::now() < retry_until => {
                    tokio::time::sleep(READ_RETRY_PAUSE).await;
                }
                result => return result.map(to_browser).map_err(Attempt::into_error)?,
            }
        }
    }
    let body = http_body_util::Limited::new(body, MAX_REQUEST_BODY)
        .map_err(|e| std::io::Error::other(e.to_string()))
        .boxed_unsync();
    let response = send(upstream, build(body)?).await.map_err(Attempt::into_error)?;
    to_browser(response.map(Body::new))
}

/// A successful answer with a length small enough to hold ([`MAX_WHOLE_READ`]).
fn bounded(response: &Response<hyper::body::Incoming>) -> bool {
    response.status() == StatusCode::OK
        && response
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok()?.parse::<usize>().ok())
            .is_some_and(|len| len <= MAX_WHOLE_READ)
}

async fn read_whole(response: Response<hyper::body::Incoming>) -> Result<Response<Body>, Attempt> {
    let (head, body) = response.into_parts();
    let collected =
        tokio::time::timeout(RESPONSE_HEAD_TIMEOUT, http_body_util::Limited::new(body, MAX_WHOLE_READ).collect())
            .await
            .map_err(|_| Attempt::Slow)?
            .map_err(|_| Attempt::Unreachable)?;
    Ok(Response::from_parts(head, Body::from(collected.to_bytes())))
}

fn to_browser(response: Response<Body>) -> Result<Response<Body>, AppError> {
    let (mut head, body) = response.into_parts();
    browser_headers(&mut head.headers);
    if head.status == StatusCode::SWITCHING_PROTOCOLS {
        return Err(unreachable_agent());
    }
    Ok(Response::from_parts(head, body))
}

type UpstreamBody = http_body_util::combinators::UnsyncBoxBody<axum::body::Bytes, std::io::Error>;

enum Attempt {
    /// No connection, or it broke before the answer began.
    Unreachable,
    /// Connected, but no answer in time.
    Slow,
}

impl Attempt {
    fn into_error(self) -> AppError {
        match self {
            Self::Unreachable => unreachable_agent(),
            Self::Slow => AppError::unavailable(
                "agent_slow",
                "Your agent did not answer in time. Reload the page to try again.",
                5,
            ),
        }
    }
}

/// One request on a fresh connection.
async fn send(
    upstream: &Upstream,
    outgoing: Request<UpstreamBody>,
) -> Result<Response<hyper::body::Incoming>, Attempt> {
    let stream = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(&upstream.host_port))
        .await
        .map_err(|_| Attempt::Unreachable)?
        .map_err(|_| Attempt::Unreachable)?;
    let _ = stream.set_nodelay(true);
    let (mut sender, connection) =
        hyper::client::conn::http1::handshake(TokioIo::new(stream)).await.map_err(|_| Attempt::Unreachable)?;
    tokio::spawn(async move {
        if let Err(e) = connection.await {
            tracing::debug!(error = %e, "agent console connection ended");
        }
    });
    tokio::time::timeout(RESPONSE_HEAD_TIMEOUT, sender.send_request(outgoing))
        .await
        .map_err(|_| Attempt::Slow)?
        .map_err(|e| {
            tracing::debug!(error = %e, "agent console request failed");
            Attempt::Unreachable
        })
}

fn unreachable_agent() -> AppError {
    AppError::unavailable("agent_unreachable", "Roost could not reach your agent. Reload the page to try again.", 5)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_forwarding_and_hop_by_hop_headers_stay_behind() {
        let mut browser = HeaderMap::new();
        for (name, value) in [
            ("cookie", "roost_session=s"),
            ("authorization", "Bearer rst_x"),
            ("origin", "https://roost.example"),
            ("x-forwarded-for", "1.2.3.4"),
            ("forwarded", "for=1.2.3.4"),
            ("x-real-ip", "1.2.3.4"),
            ("connection", "keep-alive, x-custom-hop"),
            ("x-custom-hop", "1"),
            ("x-roost-agent-secret", "spoofed"),
            ("accept", "text/html"),
            ("if-modified-since", "Tue, 01 Dec 2026 00:00:00 GMT"),
        ] {
            browser.insert(HeaderName::from_static(name), HeaderValue::from_static(value));
        }
        let out = upstream_headers(&browser);
        let names: Vec<&str> = out.keys().map(|k| k.as_str()).collect();
        assert_eq!(names, ["accept", "if-modified-since"]);
    }

    #[test]
    fn only_paths_inside_the_console_pass() {
        for inside in ["/agent", "/agent/", "/agent/assets/app.js?v=1", "/agent/chat?session=a/../b", "/agent/a.b/..c"]
        {
            assert_eq!(console_path(inside), Some(inside), "{inside}");
        }
        for outside in [
            "/",
            "/agentx",
            "/agents/",
            "/agent/../sessions/main/history",
            "/agent/..",
            "/agent/./x",
            "/agent/%2e%2e/api",
            "/agent/%2E./api",
            "/agent/.%2e",
            "/agent/a%2f..%2fb",
            "/agent/a%5C..",
            "/agent/a\\..\\b",
            "/agent/a%00",
        ] {
            assert_eq!(console_path(outside), None, "{outside}");
        }
    }
}
