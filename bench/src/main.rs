//! `roost-bench`: the load generator behind `bench/run`, plus the small servers it needs
//! (an OpenClaw echo upstream, a fake streaming LLM) and the database seeding step.
//!
//! Every run is bounded: servers exit after `--max-secs`, every phase has a deadline, and all
//! traffic goes to loopback addresses given on the command line.

mod conn;
mod ledger;
mod llm;
mod relay;
mod report;
mod seed;
mod setup;
mod signups;
mod sockets;
mod stats;

use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "roost-bench", about = "Roost benchmarks (run them with bench/run)")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// An OpenClaw-speaking echo upstream: handshake, then every frame comes back as a `chat` event.
    Upstream {
        #[arg(long)]
        port_file: PathBuf,
        #[arg(long, default_value_t = 3600)]
        max_secs: u64,
    },
    /// The fake streaming LLM (OpenAI-compatible), key `bench-key`.
    FakeLlm {
        #[arg(long)]
        port_file: PathBuf,
        /// Words in each reply; each word is one SSE chunk.
        #[arg(long, default_value_t = 50)]
        words: usize,
        #[arg(long, default_value_t = 2)]
        chunk_delay_ms: u64,
        #[arg(long, default_value_t = 3600)]
        max_secs: u64,
    },
    /// Prints a free loopback TCP port.
    FreePort,
    /// Creates users with live sessions straight in Roost's database (no Argon2 per user).
    Seed(seed::Args),
    Relay(relay::Args),
    Sockets(sockets::Args),
    Setup(setup::Args),
    /// Sign-ups through the API (an Argon2 hash each): Roost's RSS before and after.
    Signups(signups::Args),
    Llm(llm::Args),
    /// Model calls recorded and debited on a local libSQL file by many debitors at once.
    Ledger(ledger::Args),
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(async move {
        match cli.command {
            Command::Upstream { port_file, max_secs } => {
                let upstream = fakes::openclaw::echo_upstream(conn::UPSTREAM_TOKEN).await?;
                serve_until_stopped(&port_file, upstream.addr().port(), max_secs).await
            }
            Command::FakeLlm { port_file, words, chunk_delay_ms, max_secs } => {
                let reply = (0..words).map(|i| format!("word{i}")).collect::<Vec<_>>().join(" ");
                let fake = fakes::llm::FakeLlm::spawn(fakes::llm::FakeLlmOptions {
                    api_key: llm::PROVIDER_KEY.into(),
                    reply: Some(reply),
                    chunk_delay: Duration::from_millis(chunk_delay_ms),
                    model: "bench-model".into(),
                })
                .await;
                serve_until_stopped(&port_file, fake.addr().port(), max_secs).await
            }
            Command::FreePort => {
                let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
                println!("{}", listener.local_addr()?.port());
                Ok(())
            }
            Command::Seed(args) => seed::run(args).await,
            Command::Relay(args) => relay::run(args).await,
            Command::Sockets(args) => sockets::run(args).await,
            Command::Setup(args) => setup::run(args).await,
            Command::Signups(args) => signups::run(args).await,
            Command::Llm(args) => llm::run(args).await,
            Command::Ledger(args) => ledger::run(args).await,
        }
    })
}

/// Writes the port once serving, then runs until SIGTERM/Ctrl-C or `max_secs`.
async fn serve_until_stopped(port_file: &std::path::Path, port: u16, max_secs: u64) -> anyhow::Result<()> {
    let tmp = port_file.with_extension("tmp");
    std::fs::write(&tmp, port.to_string())?;
    std::fs::rename(&tmp, port_file)?;
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
        _ = tokio::time::sleep(Duration::from_secs(max_secs)) => eprintln!("roost-bench: --max-secs reached, stopping"),
    }
    Ok(())
}
