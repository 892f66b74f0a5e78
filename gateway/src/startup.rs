//! Binding, serving and graceful shutdown; `roost serve` and the tests both start here.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio::net::TcpListener;

use crate::app::{App, AppState};
use crate::config::ServeArgs;
use crate::http_server::{self, Limits};
use crate::settings::{Http, Settings};

pub struct Server {
    listener: TcpListener,
    /// `--metrics-listen`: `/metrics` alone, kept off the public listener.
    metrics_listener: Option<TcpListener>,
    limits: Limits,
    state: AppState,
}

impl Server {
    /// `args.listen` is bound first: the settings depend on the port it got.
    pub async fn build(args: &ServeArgs) -> anyhow::Result<Self> {
        forbid_inspection()?;
        let listener = TcpListener::bind(args.listen).await.with_context(|| format!("binding {}", args.listen))?;
        let settings = Settings::from_args(args, listener.local_addr()?)?;
        let Http { limits, metrics_listen } = settings.http;
        let start_line = StartLine {
            database: match settings.database.is_remote() {
                true => "remote".to_string(),
                false => format!("local {}", settings.database.location),
            },
            provider: settings.agents.runner.name(),
            metrics_token: settings.site.metrics.token.is_some(),
        };
        let app = App::build(settings).await?;
        crate::lifecycle::reconcile(&app.machines, &app.db).await.context("reconciling the machines table")?;
        let metrics_listener = match metrics_listen {
            Some(addr) => Some(TcpListener::bind(addr).await.with_context(|| format!("binding {addr} for /metrics"))?),
            None => None,
        };
        let server = Self { listener, metrics_listener, limits, state: AppState(Arc::new(app)) };
        server.log_start(start_line);
        Ok(server)
    }

    fn log_start(&self, StartLine { database, provider, metrics_token }: StartLine) {
        let metrics = match (self.metrics_addr(), metrics_token) {
            (Some(addr), token) => format!("on {addr}{}", if token { " with a token" } else { "" }),
            (None, true) => "on the main listener with a token".to_string(),
            (None, false) => "off".to_string(),
        };
        tracing::info!(
            listen = %self.local_addr(),
            database,
            provider,
            model_api = ?self.state.llm_api(),
            model = self.state.llm_model().unwrap_or("none"),
            metrics,
            "Roost is serving"
        );
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.listener.local_addr().expect("a bound listener has an address")
    }

    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics_listener.as_ref().map(|l| l.local_addr().expect("a bound listener has an address"))
    }

    pub fn state(&self) -> &AppState {
        &self.state
    }

    pub async fn run(self, shutdown: impl Future<Output = ()> + Send + 'static) -> std::io::Result<()> {
        let housekeeping = tokio::spawn(housekeeping(self.state.clone()));
        let recheck = tokio::spawn(crate::relay::recheck_credentials(self.state.clone()));
        let lifecycle = tokio::spawn(crate::lifecycle::watch(self.state.clone()));
        let leases = tokio::spawn(crate::lifecycle::leases::keep(self.state.clone()));
        let fly_reconciler = tokio::spawn(crate::lifecycle::fly_reconcile::run(self.state.clone()));
        let deleted_users = tokio::spawn(crate::machines::sweep_deleted_users(self.state.clone()));
        let give_back = tokio::spawn(crate::malloc::give_back_freed_memory());
        let stripe_worker = tokio::spawn(crate::stripe_sync::worker::run(self.state.clone()));
        let bots = tokio::spawn(crate::integrations::wake_bot_agents(self.state.clone()));
        let tasks = tokio::spawn(crate::tasks::work(self.state.clone()));
        let task_webhooks = tokio::spawn(crate::tasks::webhook::deliver_due(self.state.clone()));
        let finished_runs = self.state.finished_runs.lock().expect("lock").take();
        let refresher = finished_runs.map(|rx| tokio::spawn(crate::chat::history::refresher(self.state.clone(), rx)));
        let state = self.state.clone();
        let metrics = self.metrics_listener.map(|listener| {
            let router = crate::routes::metrics_router(state.clone());
            let limits = Limits { max_connections: 16, max_websockets: 1, ..self.limits };
            tokio::spawn(async move { http_server::serve(listener, router, &limits, std::future::pending()).await })
        });
        let router = crate::routes::router(self.state);
        let drain = state.clone();
        let shutdown = async move {
            shutdown.await;
            // Browsers get a close they can resume from (1012), before the listener stops.
            drain.relays.shutdown().await;
            tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        };
        http_server::serve(self.listener, router, &self.limits, shutdown).await;
        housekeeping.abort();
        recheck.abort();
        lifecycle.abort();
        leases.abort();
        fly_reconciler.abort();
        deleted_users.abort();
        give_back.abort();
        stripe_worker.abort();
        bots.abort();
        tasks.abort();
        task_webhooks.abort();
        state.tasks.shutdown(&state).await;
        for task in refresher.into_iter().chain(metrics) {
            task.abort();
        }
        state.machines.shutdown().await;
        Ok(())
    }
}

/// `roost reconcile`: one round of the Fly reconciler with `serve`'s settings (nothing is bound;
/// the address only fills the settings), beside any running `serve` on the same database: every
/// step takes the user's lease, as theirs do.
pub async fn reconcile_once(args: &ServeArgs) -> anyhow::Result<()> {
    let settings = Settings::from_args(args, args.listen)?;
    anyhow::ensure!(
        matches!(settings.agents.runner, crate::settings::Runner::Fly(_)),
        "roost reconcile works with --agent-provider fly; the {} provider reconciles when `roost serve` starts",
        settings.agents.runner.name().to_lowercase()
    );
    let app = App::build(settings).await?;
    let report = crate::lifecycle::fly_reconcile::once(&app.machines).await.unwrap_or_default();
    println!(
        "reconciled: {} resumed, {} given up, {} orphan apps, {} duplicate machines, {} leftover volumes, \
         {} put down, {} resized, {} rolled out, {} rolled back, {} busy, {} errors",
        report.resumed,
        report.given_up,
        report.orphan_apps,
        report.duplicate_machines,
        report.leftover_volumes,
        report.put_down,
        report.resized,
        report.rolled_out,
        report.rolled_back,
        report.busy,
        report.errors.len()
    );
    for error in &report.errors {
        println!("  {error}");
    }
    app.machines.leases().release_all().await;
    anyhow::ensure!(report.errors.is_empty(), "some reconciler steps failed; the next round tries them again");
    Ok(())
}

/// What the start line tells beyond the server's own addresses.
struct StartLine {
    database: String,
    provider: &'static str,
    metrics_token: bool,
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
        state.integrations.retain_recent();
        state.machines.prune_stages();
        if rounds.is_multiple_of(10)
            && let Err(e) = crate::sweeps::run(&state).await
        {
            tracing::warn!(error = %e, "the retention sweep failed");
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
