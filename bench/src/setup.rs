//! Authenticated `/ws` set-ups per second: cookie check and session lookup, the user's agent
//! address, a fresh upstream connection with the OpenClaw handshake, then `roost.ready`.
//! Every set-up is a different user, so each one needs its own upstream handshake ("fresh").
//! The same users then connect again while their agent links are still open ("warm"), and the
//! generator's own handshakes straight to the upstream give the baseline ("direct").

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use serde_json::json;

use crate::conn::{self, Target};
use crate::report::{self, Table, fmt_rate, fmt_us};
use crate::stats::{self, Summary};

#[derive(clap::Args)]
pub struct Args {
    #[arg(long)]
    roost: String,
    #[arg(long)]
    upstream: String,
    #[arg(long)]
    users: PathBuf,
    #[arg(long, default_value_t = 10_000)]
    count: usize,
    /// Set-ups in flight at once.
    #[arg(long, default_value_t = 64)]
    concurrency: usize,
    #[arg(long)]
    roost_pid: Option<u32>,
    #[arg(long)]
    upstream_pid: Option<u32>,
    #[arg(long)]
    work_dir: PathBuf,
    #[arg(long)]
    json: PathBuf,
}

struct Phase {
    name: &'static str,
    what: &'static str,
    ok: usize,
    failed: usize,
    secs: f64,
    times: Summary,
    /// CPU microseconds per set-up: Roost, the upstream, the generator.
    cpu: [f64; 3],
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    let users = Arc::new(conn::read_users(&args.users)?);
    anyhow::ensure!(users.len() >= args.count, "{} users seeded, {} needed", users.len(), args.count);
    let roost = Target::Roost { url: args.roost.clone(), origin: args.roost.clone(), users };
    let direct = Target::OpenClaw { name: "direct", url: args.upstream.clone(), device: conn::device(&args.work_dir)? };
    let pids = [
        args.roost_pid.into_iter().collect::<Vec<_>>(),
        args.upstream_pid.into_iter().collect(),
        vec![std::process::id()],
    ];
    let (n, c) = (args.count, args.concurrency);
    let phases = vec![
        measure("direct", "generator -> upstream: TCP, WebSocket, OpenClaw handshake", &direct, n, c, &pids).await,
        measure("roost fresh", "cookie + DB, upstream connect + handshake, roost.ready", &roost, n, c, &pids).await,
        measure("roost warm", "cookie + DB, agent link already open, roost.ready", &roost, n, c, &pids).await,
    ];
    let mut table = Table::new(&[
        "phase",
        "set-ups",
        "failed",
        "per second",
        "p50",
        "p99",
        "p99.9",
        "CPU/set-up roost",
        "upstream",
        "generator",
        "what",
    ]);
    let mut rows = Vec::new();
    for p in &phases {
        let rate = p.ok as f64 / p.secs;
        table.row(vec![
            p.name.into(),
            p.ok.to_string(),
            p.failed.to_string(),
            fmt_rate(rate),
            fmt_us(p.times.p50_us),
            fmt_us(p.times.p99_us),
            fmt_us(p.times.p999_us),
            format!("{:.0} µs", p.cpu[0]),
            format!("{:.0} µs", p.cpu[1]),
            format!("{:.0} µs", p.cpu[2]),
            p.what.into(),
        ]);
        rows.push(json!({ "phase": p.name, "what": p.what, "setups": p.ok, "failed": p.failed,
                          "per_second": stats::round(rate), "time": p.times.json(),
                          "cpu_us_per_setup": { "roost": stats::round(p.cpu[0]), "upstream": stats::round(p.cpu[1]),
                                                "generator": stats::round(p.cpu[2]) } }));
    }
    table.print(&format!("Set-ups, {} at a time, each a different user", args.concurrency));
    report::write_json(
        &args.json,
        &json!({ "bench": "setup", "machine": report::machine(), "concurrency": args.concurrency, "results": rows }),
    )?;
    anyhow::ensure!(phases.iter().all(|p| p.failed == 0), "some set-ups failed");
    Ok(())
}

async fn measure(
    name: &'static str,
    what: &'static str,
    target: &Target,
    count: usize,
    concurrency: usize,
    pids: &[Vec<u32>; 3],
) -> Phase {
    let cpu_before = pids.clone().map(|p| conn::cpu_us(&p));
    let started = Instant::now();
    let results: Vec<Result<u64, String>> = futures_util::stream::iter(0..count)
        .map(|i| async move {
            let t0 = Instant::now();
            let mut ws = target.open(i).await.map_err(|e| format!("{e:#}"))?;
            let took = t0.elapsed().as_nanos() as u64;
            // Close without waiting for the reply, as a browser tab that goes away.
            let _ = tokio::time::timeout(Duration::from_secs(1), ws.close(None)).await;
            drop(ws);
            Ok(took)
        })
        .buffer_unordered(concurrency)
        .collect()
        .await;
    let secs = started.elapsed().as_secs_f64();
    let cpu_after = pids.clone().map(|p| conn::cpu_us(&p));
    let cpu = [0, 1, 2].map(|i| (cpu_after[i] - cpu_before[i]) as f64 / count.max(1) as f64);
    let mut times = Vec::new();
    let mut failed = 0;
    for r in results {
        match r {
            Ok(t) => times.push(t),
            Err(e) => {
                if failed == 0 {
                    eprintln!("  {name}: set-up failed: {e}");
                }
                failed += 1;
            }
        }
    }
    let ok = times.len();
    eprintln!("  {name}: {ok} set-ups in {secs:.2} s ({failed} failed)");
    Phase { name, what, ok, failed, secs, times: stats::summarize(times), cpu }
}
