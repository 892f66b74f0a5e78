//! Roost's own accept loop over hyper's HTTP/1.1: `axum::serve` has no header-read timeout and
//! no connection cap, so clients that never finish a request could hold every descriptor.

mod connections;
mod counted_io;
mod track;

use std::future::Future;
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};
use tower::ServiceExt;

use connections::Connections;
pub use track::track;

/// After shutdown, connections get this long to finish the request they are serving.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);
/// A failed `accept` (out of descriptors, say) is retried after this pause, not in a busy loop.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

#[derive(Clone, Copy)]
pub struct Limits {
    pub max_connections: usize,
    pub max_websockets: usize,
    /// Also how long an idle keep-alive connection stays open: hyper starts the same timer
    /// whenever it waits for a request's head.
    pub header_read_timeout: Duration,
}

/// Serves `router` until `shutdown` resolves, then lets open requests finish (bounded).
pub async fn serve(listener: TcpListener, router: Router, limits: &Limits, shutdown: impl Future<Output = ()>) {
    let connections = Connections::new(limits.max_connections, limits.max_websockets);
    let header_read_timeout = limits.header_read_timeout;
    let (stop_tx, stop_rx) = watch::channel(false);
    // Every connection task holds a sender; `recv` answers `None` once the last one ended.
    let (alive_tx, mut alive_rx) = mpsc::channel::<()>(1);
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    tracing::warn!(error = %e, "accepting a connection failed");
                    tokio::time::sleep(ACCEPT_BACKOFF).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let Some((slot, guard)) = connections.admit() else {
            metrics::counter!("http_connections_refused_total").increment(1);
            continue;
        };
        // Relayed chat frames are small and latency-bound: no Nagle delay on browser sockets.
        if let Err(e) = stream.set_nodelay(true) {
            tracing::debug!(error = %e, "could not set TCP_NODELAY");
        }
        let io = TokioIo::new(counted_io::CountedIo::new(stream, guard));
        let router = router.clone();
        let request_slot = slot.clone();
        let service = tower::service_fn(move |mut request: axum::http::Request<hyper::body::Incoming>| {
            request.extensions_mut().insert(ConnectInfo(peer));
            request.extensions_mut().insert(request_slot.clone());
            router.clone().oneshot(request)
        });
        let mut stop = stop_rx.clone();
        let alive = alive_tx.clone();
        tokio::spawn(async move {
            let _alive = alive;
            let mut builder = hyper::server::conn::http1::Builder::new();
            builder.timer(TokioTimer::new()).header_read_timeout(header_read_timeout);
            let connection = builder.serve_connection(io, TowerToHyperService::new(service)).with_upgrades();
            let mut connection = std::pin::pin!(connection);
            tokio::select! {
                result = connection.as_mut() => log_end(result),
                () = slot.evicted() => tracing::debug!("closed an idle connection to make room"),
                () = async { let _ = stop.wait_for(|stop| *stop).await; } => {
                    connection.as_mut().graceful_shutdown();
                    if let Ok(result) = tokio::time::timeout(DRAIN_TIMEOUT, connection).await {
                        log_end(result);
                    }
                }
            }
        });
    }
    drop(listener);
    let _ = stop_tx.send(true);
    drop(alive_tx);
    let _ = tokio::time::timeout(DRAIN_TIMEOUT + Duration::from_secs(1), alive_rx.recv()).await;
}

fn log_end(result: Result<(), hyper::Error>) {
    if let Err(e) = result {
        // Clients that time out or go away are ordinary; nothing here is the server's fault.
        tracing::debug!(error = %e, "connection ended with an error");
    }
}
