//! Many idle relayed sockets: memory per socket pair (browser side + agent side), and a check
//! that every one still relays after the hold. The same count goes through nginx.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use serde_json::json;
use tokio::sync::watch;
use tokio_tungstenite::tungstenite::{Message, Utf8Bytes};

use crate::conn::{self, Target, Ws};
use crate::report::{self, Table};

#[derive(clap::Args)]
pub struct Args {
    #[arg(long)]
    roost: String,
    #[arg(long)]
    roost_pid: u32,
    #[arg(long)]
    nginx: Option<String>,
    /// nginx's master process; its workers are found as its children.
    #[arg(long)]
    nginx_pid: Option<u32>,
    #[arg(long)]
    users: PathBuf,
    #[arg(long, default_value_t = 10_000)]
    count: usize,
    /// The count asked for, when the open-files limit forced a smaller one.
    #[arg(long)]
    requested: Option<usize>,
    #[arg(long)]
    open_files_limit: Option<u64>,
    /// Seconds every socket is held idle (both legs open) before the liveness check.
    #[arg(long, default_value_t = 60)]
    hold: u64,
    #[arg(long)]
    work_dir: PathBuf,
    #[arg(long)]
    json: PathBuf,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Phase {
    Hold,
    Check,
    Stop,
}

struct Outcome {
    path: &'static str,
    opened: usize,
    live: usize,
    open_secs: f64,
    rss_before_kib: u64,
    rss_open_kib: u64,
    rss_end_kib: u64,
}

impl Outcome {
    fn per_pair_kib(&self) -> f64 {
        (self.rss_open_kib.max(self.rss_end_kib) as f64 - self.rss_before_kib as f64) / self.opened.max(1) as f64
    }
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    let users = Arc::new(conn::read_users(&args.users)?);
    let mut outcomes = Vec::new();
    let roost = Target::Roost { url: args.roost.clone(), origin: args.roost.clone(), users };
    outcomes.push(hold(&roost, vec![args.roost_pid], args.count, args.hold).await?);
    if let (Some(url), Some(pid)) = (&args.nginx, args.nginx_pid) {
        let nginx = Target::OpenClaw { name: "nginx", url: url.clone(), device: conn::device(&args.work_dir)? };
        outcomes.push(hold(&nginx, conn::with_children(pid), args.count, args.hold).await?);
    }

    let mut table = Table::new(&[
        "path",
        "sockets",
        "opened in",
        "live after hold",
        "RSS before",
        "RSS open",
        "RSS end",
        "per socket pair",
    ]);
    let mut rows = Vec::new();
    for o in &outcomes {
        table.row(vec![
            o.path.into(),
            o.opened.to_string(),
            format!("{:.1} s", o.open_secs),
            format!("{}/{}", o.live, o.opened),
            format!("{:.1} MiB", o.rss_before_kib as f64 / 1024.0),
            format!("{:.1} MiB", o.rss_open_kib as f64 / 1024.0),
            format!("{:.1} MiB", o.rss_end_kib as f64 / 1024.0),
            format!("{:.1} KiB", o.per_pair_kib()),
        ]);
        rows.push(json!({
            "path": o.path, "sockets": o.opened, "open_s": o.open_secs, "live_after_hold": o.live,
            "rss_before_kib": o.rss_before_kib, "rss_open_kib": o.rss_open_kib, "rss_end_kib": o.rss_end_kib,
            "rss_per_socket_pair_kib": (o.per_pair_kib() * 10.0).round() / 10.0,
        }));
    }
    table.print(&format!(
        "Idle relayed sockets held {} s (RSS per pair = (max(open, end) - before) / sockets; nginx = master + workers)",
        args.hold
    ));
    report::write_json(
        &args.json,
        &json!({ "bench": "sockets", "machine": report::machine(), "hold_s": args.hold, "results": rows,
                 "requested_sockets": args.requested.unwrap_or(args.count), "open_files_limit": args.open_files_limit }),
    )?;
    let all_live = outcomes.iter().all(|o| o.live == args.count && o.opened == args.count);
    anyhow::ensure!(all_live, "some sockets did not stay live");
    Ok(())
}

async fn hold(target: &Target, pids: Vec<u32>, count: usize, hold_secs: u64) -> anyhow::Result<Outcome> {
    let path = target.name();
    eprintln!("{path}: opening {count} sockets");
    let rss_before_kib = conn::total_rss_kib(&pids);
    let started = Instant::now();
    let sockets = conn::open_many(target, count, 128).await?;
    let open_secs = started.elapsed().as_secs_f64();
    let (phase_tx, phase_rx) = watch::channel(Phase::Hold);
    let live = Arc::new(AtomicUsize::new(0));
    let checked = Arc::new(AtomicUsize::new(0));
    let frame = Utf8Bytes::from(conn::request_frame(256, conn::Kind::Events));
    let tasks: Vec<_> = sockets
        .into_iter()
        .map(|ws| tokio::spawn(holder(ws, phase_rx.clone(), frame.clone(), live.clone(), checked.clone())))
        .collect();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let rss_open_kib = conn::total_rss_kib(&pids);
    eprintln!("{path}: {count} sockets open, RSS {:.1} MiB; holding {hold_secs} s", rss_open_kib as f64 / 1024.0);
    tokio::time::sleep(Duration::from_secs(hold_secs.saturating_sub(2))).await;
    phase_tx.send_replace(Phase::Check);
    let deadline = Instant::now() + Duration::from_secs(60);
    while checked.load(Ordering::Relaxed) < count && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let rss_end_kib = conn::total_rss_kib(&pids);
    let live = live.load(Ordering::Relaxed);
    eprintln!("{path}: {live}/{count} sockets answered after the hold");
    phase_tx.send_replace(Phase::Stop);
    for task in tasks {
        let _ = task.await;
    }
    Ok(Outcome { path, opened: count, live, open_secs, rss_before_kib, rss_open_kib, rss_end_kib })
}

/// Holds one socket, reading all the time (so pings are answered, as a browser does), sends
/// one request at the check and counts the socket live if the echo comes back.
async fn holder(
    mut ws: Ws,
    mut phase: watch::Receiver<Phase>,
    frame: Utf8Bytes,
    live: Arc<AtomicUsize>,
    checked: Arc<AtomicUsize>,
) {
    let mut awaiting = false;
    let mut done = false;
    loop {
        tokio::select! {
            message = ws.next() => match message {
                Some(Ok(Message::Text(_))) if awaiting => {
                    awaiting = false;
                    live.fetch_add(1, Ordering::Relaxed);
                    checked.fetch_add(1, Ordering::Relaxed);
                }
                Some(Ok(Message::Close(_))) | Some(Err(_)) | None => {
                    if awaiting || !done {
                        checked.fetch_add(1, Ordering::Relaxed);
                    }
                    let _ = phase.wait_for(|p| *p == Phase::Stop).await;
                    return;
                }
                Some(Ok(_)) => {}
            },
            changed = phase.changed() => {
                if changed.is_err() {
                    return;
                }
                let now = *phase.borrow_and_update();
                match now {
                    Phase::Check if !done => {
                        done = true;
                        if ws.send(Message::Text(frame.clone())).await.is_ok() {
                            awaiting = true;
                        } else {
                            checked.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                    Phase::Stop => {
                        let _ = tokio::time::timeout(Duration::from_secs(2), ws.close(None)).await;
                        return;
                    }
                    _ => {}
                }
            }
        }
    }
}
