//! `roost-agent`: see the crate docs. Exits 0 after a clean stop, 2 on bad settings, 1 when it
//! cannot listen.

use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use roost_agent::proxy;
use roost_agent::router::Context;
use roost_agent::settings::Settings;
use roost_agent::supervisor::{self, Pause, Stage};
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::watch;

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("ROOST_AGENT_LOG").unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let settings = match Settings::from_env() {
        Ok(settings) => settings,
        Err(problems) => {
            eprintln!("roost-agent: {problems}");
            return ExitCode::from(2);
        }
    };
    let (Ok(mut term), Ok(mut int)) = (signal(SignalKind::terminate()), signal(SignalKind::interrupt())) else {
        eprintln!("roost-agent: cannot handle signals");
        return ExitCode::FAILURE;
    };
    let listener = match tokio::net::TcpListener::bind(settings.listen).await {
        Ok(listener) => listener,
        Err(e) => {
            eprintln!("roost-agent: cannot listen on {}: {e}", settings.listen);
            return ExitCode::FAILURE;
        }
    };
    tracing::info!(address = %settings.listen, openclaw_port = settings.openclaw_port, "listening");
    let (stage_tx, stage_rx) = watch::channel(Stage::Preparing);
    let (shutdown_tx, shutdown_rx) = watch::channel(false);
    let upstream = SocketAddr::from(([127, 0, 0, 1], settings.openclaw_port));
    // OpenClaw's own stop timeout, and time to notice it is down.
    let (pause, paused) = Pause::new(settings.stop_timeout + Duration::from_secs(10));
    let ctx = Arc::new(Context {
        secret: settings.secret.clone(),
        upstream,
        stage: stage_rx,
        state_dir: settings.state_dir.clone(),
        pause,
        openclaw_version: openclaw_version(&settings.openclaw).await,
    });
    let server = tokio::spawn(proxy::serve(listener, ctx, settings.max_connections, shutdown_rx.clone()));
    let supervisor = tokio::spawn(supervisor::run(settings, stage_tx, shutdown_rx, paused));
    tokio::select! {
        _ = term.recv() => tracing::info!("SIGTERM: stopping"),
        _ = int.recv() => tracing::info!("SIGINT: stopping"),
    }
    let _ = shutdown_tx.send(true);
    let _ = supervisor.await;
    server.abort();
    tracing::info!("stopped");
    ExitCode::SUCCESS
}

/// The `version` in the `package.json` beside OpenClaw's entry point (`None`: not found there).
async fn openclaw_version(entry: &std::path::Path) -> Option<String> {
    let package = entry.parent()?.join("package.json");
    let text = tokio::fs::read(package).await.ok()?;
    let value: serde_json::Value = serde_json::from_slice(&text).ok()?;
    value["version"].as_str().map(|v| v.chars().take(64).collect())
}
