//! The private-network listener, and forwarding to OpenClaw on 127.0.0.1 so that it sees a
//! loopback client (openclaw-protocol §3 option A): HTTP requests and WebSocket upgrades alike,
//! each on a fresh loopback connection. Bounded: connections, header bytes, header read time,
//! the upstream connect and the wait for its response head.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::header::{HOST, HeaderMap, HeaderValue, UPGRADE};
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, watch};

use crate::router::{self, Body, Context};

const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// Request head limit (hyper's read buffer; its minimum is 8 KiB).
const MAX_HEAD_BYTES: usize = 16 * 1024;
const MAX_HEADERS: usize = 64;
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
/// OpenClaw answers heads quickly (streams come as bodies); a stuck one must not hold a slot.
const RESPONSE_HEAD_TIMEOUT: Duration = Duration::from_secs(60);

/// Accepts until `shutdown` turns true. Connections past `max_connections` are closed at once.
pub async fn serve(
    listener: TcpListener,
    ctx: Arc<Context>,
    max_connections: usize,
    mut shutdown: watch::Receiver<bool>,
) {
    let slots = Arc::new(Semaphore::new(max_connections));
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // EMFILE and the like: pause rather than spin.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            _ = crate::supervisor::until_set(&mut shutdown) => return,
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            tracing::warn!(%peer, max_connections, "too many connections; closing one");
            drop(stream);
            continue;
        };
        let ctx = ctx.clone();
        tokio::spawn(async move {
            let _slot = slot;
            let _ = stream.set_nodelay(true);
            let service = service_fn(move |req| {
                let ctx = ctx.clone();
                async move { Ok::<_, std::convert::Infallible>(router::handle(req, ctx).await) }
            });
            let conn = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(HEADER_READ_TIMEOUT)
                .max_buf_size(MAX_HEAD_BYTES)
                .max_headers(MAX_HEADERS)
                .serve_connection(TokioIo::new(stream), service)
                .with_upgrades();
            if let Err(e) = conn.await {
                tracing::debug!(%peer, error = %e, "connection ended with an error");
            }
        });
    }
}

/// Headers that would make OpenClaw treat the loopback client as forwarded (an unattributable
/// proxy, refused) or that belong to the hop from Roost.
fn sanitize(headers: &mut HeaderMap, upstream: SocketAddr) {
    let drop: Vec<_> = headers
        .keys()
        .filter(|name| {
            let n = name.as_str();
            n.starts_with("x-forwarded-")
                || n.starts_with("fly-")
                || matches!(n, "forwarded" | "x-real-ip" | "proxy-authorization" | "proxy-connection")
        })
        .cloned()
        .collect();
    for name in drop {
        headers.remove(name);
    }
    if let Ok(host) = HeaderValue::from_str(&format!("127.0.0.1:{}", upstream.port())) {
        headers.insert(HOST, host);
    }
}

fn bad_gateway() -> Response<Body> {
    router::json(StatusCode::BAD_GATEWAY, r#"{"error":"OpenClaw is not answering on this machine yet."}"#)
}

/// Forwards one (already admitted) request; a `101` answer joins the two upgraded connections.
pub async fn forward(mut req: Request<Incoming>, upstream: SocketAddr) -> Response<Body> {
    sanitize(req.headers_mut(), upstream);
    let downstream = req.headers().contains_key(UPGRADE).then(|| hyper::upgrade::on(&mut req));
    let stream = match tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(upstream)).await {
        Ok(Ok(stream)) => stream,
        _ => return bad_gateway(),
    };
    let _ = stream.set_nodelay(true);
    let (mut sender, conn) = match hyper::client::conn::http1::handshake(TokioIo::new(stream)).await {
        Ok(pair) => pair,
        Err(_) => return bad_gateway(),
    };
    tokio::spawn(async move {
        let _ = conn.with_upgrades().await;
    });
    let mut res = match tokio::time::timeout(RESPONSE_HEAD_TIMEOUT, sender.send_request(req)).await {
        Ok(Ok(res)) => res,
        _ => return bad_gateway(),
    };
    if res.status() == StatusCode::SWITCHING_PROTOCOLS
        && let Some(downstream) = downstream
    {
        let upgraded = hyper::upgrade::on(&mut res);
        tokio::spawn(async move {
            match tokio::join!(downstream, upgraded) {
                (Ok(down), Ok(up)) => {
                    let _ = tokio::io::copy_bidirectional(&mut TokioIo::new(down), &mut TokioIo::new(up)).await;
                }
                (down, up) => {
                    tracing::debug!(down = down.is_ok(), up = up.is_ok(), "an upgrade did not complete");
                }
            }
        });
    }
    res.map(|body: Incoming| body.boxed())
}
