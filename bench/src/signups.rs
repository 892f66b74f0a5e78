//! Sign-ups through the API (`POST /api/auth/signup`, an Argon2 hash each), many at a time:
//! Roost's RSS before, at its peak and after, since each hash needs 19 MiB. Answers of 503/429
//! (the hashing queue is full) are counted and retried after their `Retry-After`, as a polite
//! client would, so the run ends with every account created.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use serde_json::json;

use crate::conn;
use crate::report::{self, Table};

#[derive(clap::Args)]
pub struct Args {
    #[arg(long)]
    roost: String,
    #[arg(long)]
    roost_pid: u32,
    #[arg(long, default_value_t = 1000)]
    count: usize,
    /// Sign-ups in flight at once.
    #[arg(long, default_value_t = 32)]
    concurrency: usize,
    /// Seconds to wait after the last sign-up before the final RSS reading.
    #[arg(long, default_value_t = 5)]
    settle: u64,
    /// A label for this run in the table and the JSON (e.g. `before`, `after`).
    #[arg(long, default_value = "roost")]
    label: String,
    #[arg(long)]
    json: PathBuf,
}

/// Tries per sign-up, so a server that always refuses cannot keep the run going.
const MAX_TRIES: usize = 50;

pub async fn run(args: Args) -> anyhow::Result<()> {
    let client = reqwest::Client::builder().timeout(Duration::from_secs(60)).build()?;
    let pid = args.roost_pid;
    let rss_before = conn::rss_kib(pid)?;
    let started = Instant::now();
    let url = format!("{}/api/auth/signup", args.roost);
    let outcomes: Vec<Result<usize, String>> = futures_util::stream::iter(0..args.count)
        .map(|i| {
            let (client, url, origin) = (client.clone(), url.clone(), args.roost.clone());
            async move { signup(&client, &url, &origin, i).await }
        })
        .buffer_unordered(args.concurrency)
        .collect()
        .await;
    let secs = started.elapsed().as_secs_f64();
    let rss_done = conn::rss_kib(pid)?;
    tokio::time::sleep(Duration::from_secs(args.settle)).await;
    let rss_after = conn::rss_kib(pid)?;
    let rss_peak = conn::peak_rss_kib(pid)?;

    let mut created = 0;
    let mut refused = 0;
    let mut failed = 0;
    for outcome in outcomes {
        match outcome {
            Ok(busy) => {
                created += 1;
                refused += busy;
            }
            Err(e) => {
                if failed == 0 {
                    eprintln!("  sign-up failed: {e}");
                }
                failed += 1;
            }
        }
    }
    let mib = |kib: u64| format!("{:.1} MiB", kib as f64 / 1024.0);
    let mut table =
        Table::new(&["run", "created", "failed", "busy answers", "per second", "RSS before", "RSS peak", "RSS after"]);
    table.row(vec![
        args.label.clone(),
        created.to_string(),
        failed.to_string(),
        refused.to_string(),
        format!("{:.0}/s", created as f64 / secs),
        mib(rss_before),
        mib(rss_peak),
        mib(rss_after),
    ]);
    table.print(&format!(
        "{} sign-ups, {} at a time (RSS after = {} s after the last one)",
        args.count, args.concurrency, args.settle
    ));
    report::write_json(
        &args.json,
        &json!({ "bench": "signups", "machine": report::machine(), "label": args.label, "count": args.count,
                 "concurrency": args.concurrency, "created": created, "failed": failed, "busy_answers": refused,
                 "secs": secs, "rss_before_kib": rss_before, "rss_done_kib": rss_done,
                 "rss_peak_kib": rss_peak, "rss_after_kib": rss_after, "settle_s": args.settle }),
    )?;
    anyhow::ensure!(failed == 0, "some sign-ups failed");
    Ok(())
}

/// One account; the number of busy answers it took.
async fn signup(client: &reqwest::Client, url: &str, origin: &str, i: usize) -> Result<usize, String> {
    let body = json!({ "email": format!("bench-signup-{i}@example.com"), "password": "bench password 1234" });
    for busy in 0..MAX_TRIES {
        let res = client.post(url).header("origin", origin).json(&body).send().await.map_err(|e| e.to_string())?;
        let status = res.status().as_u16();
        match status {
            201 => return Ok(busy),
            429 | 503 => {
                let wait = res
                    .headers()
                    .get("retry-after")
                    .and_then(|v| v.to_str().ok()?.parse::<u64>().ok())
                    .ok_or_else(|| format!("{status} without Retry-After"))?;
                tokio::time::sleep(Duration::from_secs(wait.min(10))).await;
            }
            _ => return Err(format!("{status}: {}", res.text().await.unwrap_or_default())),
        }
    }
    Err(format!("still refused after {MAX_TRIES} tries"))
}
