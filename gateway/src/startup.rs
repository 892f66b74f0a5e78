//! Binding, serving and graceful shutdown; `roost serve` and the tests both start here.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use axum::serve::ListenerExt;
use tokio::net::TcpListener;

use crate::app::{App, AppState};
use crate::config::ServeArgs;
use crate::db::sessions;
use crate::domain::now_secs;

pub struct Server {
    listener: TcpListener,
    state: AppState,
}

impl Server {
    pub async fn build(args: &ServeArgs) -> anyhow::Result<Self> {
        forbid_inspection()?;
        let listener = TcpListener::bind(args.listen).await.with_context(|| format!("binding {}", args.listen))?;
        let bound = listener.local_addr()?;
        let app = App::build(args, bound).await?;
        Ok(Self { listener, state: AppState(Arc::new(app)) })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.listener.local_addr().expect("a bound listener has an address")
    }

    pub fn state(&self) -> &AppState {
        &self.state
    }

    pub async fn run(self, shutdown: impl Future<Output = ()> + Send + 'static) -> std::io::Result<()> {
        let housekeeping = tokio::spawn(housekeeping(self.state.clone()));
        let recheck = tokio::spawn(crate::relay::recheck_credentials(self.state.clone()));
        let finished_runs = self.state.finished_runs.lock().expect("lock").take();
        let refresher = finished_runs.map(|rx| tokio::spawn(crate::chat::history::refresher(self.state.clone(), rx)));
        let state = self.state.clone();
        let router = crate::routes::router(self.state);
        let drain = state.clone();
        let shutdown = async move {
            shutdown.await;
            // Browsers get a close they can resume from (1012), before the listener stops.
            drain.relays.shutdown().await;
            tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        };
        // Relayed chat frames are small and latency-bound: no Nagle delay on browser sockets
        // (the agent leg sets TCP_NODELAY when it connects).
        let listener = self.listener.tap_io(|tcp| {
            if let Err(e) = tcp.set_nodelay(true) {
                tracing::debug!(error = %e, "could not set TCP_NODELAY");
            }
        });
        let result = axum::serve(listener, router.into_make_service_with_connect_info::<SocketAddr>())
            .with_graceful_shutdown(shutdown)
            .await;
        housekeeping.abort();
        recheck.abort();
        if let Some(task) = refresher {
            task.abort();
        }
        state.machines.shutdown().await;
        result
    }
}

/// Roost's memory and environment hold the server secret and provider keys. Non-dumpable, its
/// `/proc/<pid>/{environ,mem,maps,fd}` are closed to every process without `CAP_SYS_PTRACE`,
/// same user or not, and it leaves no core dump.
fn forbid_inspection() -> anyhow::Result<()> {
    // SAFETY: prctl with constant arguments; it only changes a flag on this process.
    if unsafe { libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0) } != 0 {
        return Err(std::io::Error::last_os_error()).context("making the process non-dumpable");
    }
    Ok(())
}

/// Periodic cleanup: rate-limiter keys that refilled, and sessions past their deadlines.
async fn housekeeping(state: AppState) {
    let mut tick = tokio::time::interval(Duration::from_secs(60));
    let mut rounds: u64 = 0;
    loop {
        tick.tick().await;
        state.auth_limiter.retain_recent();
        state.llm_limiter.retain_recent();
        state.machines.prune_stages();
        if rounds.is_multiple_of(10) {
            let swept = async {
                sessions::delete_expired(&*state.db.conn()?, now_secs(), state.settings.session_idle_secs).await
            };
            match swept.await {
                Ok(n) if n > 0 => tracing::info!(count = n, "removed expired sessions"),
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "session sweep failed"),
            }
        }
        rounds += 1;
    }
}

/// Resolves on Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! { _ = ctrl_c => {}, _ = terminate => {} }
    tracing::info!("shutting down");
}
