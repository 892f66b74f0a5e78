//! Stateful stand-ins for Roost's remote parts, speaking their real wire formats: Fly.io's
//! Machines API (`fakes::fly`), an OpenClaw gateway with failure injection, an
//! OpenAI/Anthropic-compatible LLM, Stripe's API with signed webhooks, and the Telegram Bot
//! API and Discord (REST, and the gateway WebSocket a bot runs on). Used by the gateway's
//! tests and by the bench, never by the `roost` binary (the simulated agent behind
//! `--agent-provider fake` is the gateway's own, in `gateway::machines::simulated`).

pub mod discord;
pub mod discord_gateway;
pub mod fly;
pub mod llm;
pub mod openclaw;
pub mod smtp;
pub mod stripe;
pub mod telegram;

use std::net::SocketAddr;

use tokio::task::JoinHandle;

/// The simulated agent's chunking, so the fake model streams the way it does.
use gateway::machines::simulated::split_words;

/// Serves a fake on `127.0.0.1:0`; the task ends when the handle is aborted.
async fn serve_on_loopback(app: axum::Router, what: &str) -> (SocketAddr, JoinHandle<()>) {
    let listener =
        tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap_or_else(|e| panic!("{what}: bind 127.0.0.1:0: {e}"));
    let addr = listener.local_addr().unwrap_or_else(|e| panic!("{what}: local_addr: {e}"));
    let server = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (addr, server)
}
