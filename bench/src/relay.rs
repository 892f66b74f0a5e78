//! Relay throughput and latency: the same generator drives `direct`, `nginx` and `roost`.
//!
//! Closed loop: every socket sends one `chat.send` request, waits for the echo (a `chat` event
//! carrying the request) and sends the next; the round trip is timed per message.
//! Paced (open loop): every socket sends at a fixed rate whatever the replies do, so a slow path
//! cannot slow the senders down. Latency counts from the moment each message was sent; how late
//! the senders were against their schedule (tokio's timer has 1 ms ticks) is reported beside it.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use futures_util::{SinkExt, StreamExt};
use serde_json::json;
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::Utf8Bytes;

use crate::conn::{self, Kind, Target, Ws};
use crate::report::{self, Table, fmt_rate, fmt_us};
use crate::stats::{self, Summary};

#[derive(clap::Args)]
pub struct Args {
    /// The echo upstream, `ws://127.0.0.1:PORT/`.
    #[arg(long)]
    upstream: String,
    /// nginx in front of the same upstream, `ws://127.0.0.1:PORT/`.
    #[arg(long)]
    nginx: String,
    /// Roost, `http://127.0.0.1:PORT` (its agents are the same upstream).
    #[arg(long)]
    roost: String,
    #[arg(long)]
    users: PathBuf,
    #[arg(long, value_delimiter = ',', default_value = "1024,65536")]
    sizes: Vec<usize>,
    /// Which answers each frame gets: `events` (a `chat` event) and/or `responses` (a `res`).
    #[arg(long, value_delimiter = ',', default_value = "events,responses")]
    kinds: Vec<Kind>,
    #[arg(long, value_delimiter = ',', default_value = "1,100,1000")]
    conns: Vec<usize>,
    /// Measured seconds per cell (after the warm-up).
    #[arg(long, default_value_t = 10.0)]
    duration: f64,
    #[arg(long, default_value_t = 2.0)]
    warmup: f64,
    #[arg(long, default_value_t = 1000)]
    paced_conns: usize,
    /// Messages per second per socket in the paced run.
    #[arg(long, default_value_t = 10.0)]
    paced_rate: f64,
    #[arg(long, default_value_t = 1024)]
    paced_size: usize,
    #[arg(long, default_value_t = 20.0)]
    paced_duration: f64,
    #[arg(long)]
    roost_pid: Option<u32>,
    /// nginx's master process (its workers are its children), for CPU per message.
    #[arg(long)]
    nginx_pid: Option<u32>,
    #[arg(long)]
    upstream_pid: Option<u32>,
    /// After the last cell, wait this long (Roost's link grace period plus a minute) and read
    /// Roost's RSS again, to see what it gives back once every user has gone (0: skip).
    #[arg(long, default_value_t = 0)]
    settle_secs: u64,
    #[arg(long)]
    work_dir: PathBuf,
    #[arg(long)]
    json: PathBuf,
}

/// Roost's RSS in KiB: before any socket, at the end of each Roost cell (its sockets still
/// open, just after relaying at full speed), and after they all went and settled.
#[derive(Default)]
struct RoostMemory {
    before: Option<u64>,
    /// Anonymous memory only (no pages of the executable, which a run pages in).
    before_anon: Option<u64>,
    after_anon: Option<u64>,
    /// `(kind, frame size, sockets, RSS)` per Roost cell.
    cells: Vec<(Kind, usize, usize, u64)>,
    after: Option<u64>,
}

impl RoostMemory {
    fn per_user_kib(&self, conns: usize, rss: u64) -> Option<f64> {
        Some((rss as f64 - self.before? as f64) / conns.max(1) as f64)
    }
}

/// CPU microseconds per relayed message: the proxy on the path (Roost or nginx), the echo
/// upstream, and the generator itself.
#[derive(Clone, Copy, Default)]
struct CpuPerMsg {
    proxy: f64,
    upstream: f64,
    generator: f64,
}

struct Pids {
    roost: Vec<u32>,
    nginx: Vec<u32>,
    upstream: Vec<u32>,
    generator: Vec<u32>,
}

impl Pids {
    fn proxy(&self, path: &str) -> &[u32] {
        match path {
            "roost" => &self.roost,
            "nginx" => &self.nginx,
            _ => &[],
        }
    }

    fn snapshot(&self, path: &str) -> [u64; 3] {
        [conn::cpu_us(self.proxy(path)), conn::cpu_us(&self.upstream), conn::cpu_us(&self.generator)]
    }

    fn per_msg(&self, path: &str, before: [u64; 3], msgs: usize) -> CpuPerMsg {
        let after = self.snapshot(path);
        let per = |i: usize| (after[i] - before[i]) as f64 / msgs.max(1) as f64;
        CpuPerMsg { proxy: per(0), upstream: per(1), generator: per(2) }
    }
}

struct Cell {
    cpu: CpuPerMsg,
    path: &'static str,
    kind: Kind,
    size: usize,
    conns: usize,
    msgs_per_s: f64,
    errors: usize,
    rtt: Summary,
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    let device = conn::device(&args.work_dir)?;
    let users = Arc::new(conn::read_users(&args.users)?);
    let targets = [
        Target::OpenClaw { name: "direct", url: args.upstream.clone(), device: device.clone() },
        Target::OpenClaw { name: "nginx", url: args.nginx.clone(), device: device.clone() },
        Target::Roost { url: args.roost.clone(), origin: args.roost.clone(), users },
    ];
    let warmup = Duration::from_secs_f64(args.warmup);
    let duration = Duration::from_secs_f64(args.duration);
    let pids = Pids {
        roost: args.roost_pid.into_iter().collect(),
        nginx: args.nginx_pid.map(conn::with_children).unwrap_or_default(),
        upstream: args.upstream_pid.into_iter().collect(),
        generator: vec![std::process::id()],
    };

    let rss = |pid: Option<u32>| pid.and_then(|p| conn::rss_kib(p).ok());
    let anon = |pid: Option<u32>| pid.and_then(|p| conn::rss_anon_kib(p).ok());
    let mut memory =
        RoostMemory { before: rss(args.roost_pid), before_anon: anon(args.roost_pid), ..RoostMemory::default() };
    let mut cells = Vec::new();
    for &n in &args.conns {
        for target in &targets {
            let mut sockets = conn::open_many(target, n, 64).await?;
            for (&kind, &size) in args.kinds.iter().flat_map(|k| args.sizes.iter().map(move |s| (k, s))) {
                let (back, cell) = closed_loop(target.name(), kind, sockets, size, warmup, duration, &pids).await;
                sockets = back;
                eprintln!(
                    "  {:>6} {:>9} {:>6} B x {:>5}: {:>8} msg/s  p50 {:>9}  p99 {:>9}  p99.9 {:>9}  errors {}",
                    cell.path,
                    cell.kind.name(),
                    cell.size,
                    cell.conns,
                    fmt_rate(cell.msgs_per_s),
                    fmt_us(cell.rtt.p50_us),
                    fmt_us(cell.rtt.p99_us),
                    fmt_us(cell.rtt.p999_us),
                    cell.errors
                );
                if cell.path == "roost"
                    && let Some(now) = rss(args.roost_pid)
                {
                    memory.cells.push((kind, size, n, now));
                }
                cells.push(cell);
            }
            conn::close_all(sockets).await;
        }
    }

    let mut paced = Vec::new();
    let paced_cells = args.kinds.iter().flat_map(|&k| targets.iter().map(move |t| (k, t)));
    for (kind, target) in paced_cells.filter(|_| args.paced_conns > 0) {
        {
            let sockets = conn::open_many(target, args.paced_conns, 64).await?;
            let (sockets, result) = paced_run(
                target.name(),
                kind,
                sockets,
                args.paced_size,
                args.paced_rate,
                warmup,
                Duration::from_secs_f64(args.paced_duration),
            )
            .await;
            eprintln!(
                "  paced {:>6} {:>9}: sent {} got {} ({} msg/s)  p50 {}  p99 {}  p99.9 {}",
                result.path,
                result.kind.name(),
                result.sent,
                result.received,
                fmt_rate(result.achieved),
                fmt_us(result.latency.p50_us),
                fmt_us(result.latency.p99_us),
                fmt_us(result.latency.p999_us)
            );
            paced.push(result);
            conn::close_all(sockets).await;
        }
    }

    let roost_peak_rss_kib = args.roost_pid.and_then(|p| conn::peak_rss_kib(p).ok());
    if args.settle_secs > 0 {
        eprintln!("  waiting {} s for Roost to let go of the users' links", args.settle_secs);
        tokio::time::sleep(Duration::from_secs(args.settle_secs)).await;
        memory.after = rss(args.roost_pid);
        memory.after_anon = anon(args.roost_pid);
    }
    print_and_save(&args, &cells, &paced, roost_peak_rss_kib, &memory)
}

/// Every socket runs request → echo → request … for warm-up + duration; samples count after warm-up.
async fn closed_loop(
    path: &'static str,
    kind: Kind,
    sockets: Vec<Ws>,
    size: usize,
    warmup: Duration,
    duration: Duration,
    pids: &Pids,
) -> (Vec<Ws>, Cell) {
    let frame = Utf8Bytes::from(conn::request_frame(size, kind));
    let conns = sockets.len();
    let start = Instant::now();
    let measure_from = start + warmup;
    let end = measure_from + duration;
    let cpu = tokio::spawn(async move {
        tokio::time::sleep_until(measure_from.into()).await;
    });
    let tasks: Vec<_> = sockets
        .into_iter()
        .map(|mut ws| {
            let frame = frame.clone();
            tokio::spawn(async move {
                let mut samples = Vec::with_capacity(1024);
                let mut error = None;
                while Instant::now() < end {
                    let sent = Instant::now();
                    if let Err(e) = ws.send(Message::Text(frame.clone())).await {
                        error = Some(anyhow::Error::from(e));
                        break;
                    }
                    match tokio::time::timeout(Duration::from_secs(30), conn::next_text(&mut ws)).await {
                        Ok(Ok(_)) => {}
                        Ok(Err(e)) => {
                            error = Some(e);
                            break;
                        }
                        Err(_) => {
                            error = Some(anyhow::anyhow!("no echo within 30 s"));
                            break;
                        }
                    }
                    if sent >= measure_from {
                        samples.push(sent.elapsed().as_nanos() as u64);
                    }
                }
                (ws, samples, error)
            })
        })
        .collect();
    let _ = cpu.await;
    let cpu_before = pids.snapshot(path);
    tokio::time::sleep_until(end.into()).await;
    let mut back = Vec::with_capacity(conns);
    let mut all = Vec::new();
    let mut errors = 0;
    let mut cpu_msgs = 0;
    let mut joined = Vec::with_capacity(tasks.len());
    for task in tasks {
        joined.push(task.await.expect("closed-loop task"));
    }
    for (_, samples, _) in &joined {
        cpu_msgs += samples.len();
    }
    let cpu = pids.per_msg(path, cpu_before, cpu_msgs);
    for (ws, samples, error) in joined {
        all.extend(samples);
        if let Some(e) = error {
            if errors == 0 {
                eprintln!("  {path}: socket failed: {e:#}");
            }
            errors += 1;
        } else {
            back.push(ws);
        }
    }
    let msgs_per_s = all.len() as f64 / duration.as_secs_f64();
    (back, Cell { cpu, path, kind, size, conns, msgs_per_s, errors, rtt: stats::summarize(all) })
}

struct Paced {
    path: &'static str,
    kind: Kind,
    conns: usize,
    rate: f64,
    size: usize,
    sent: usize,
    received: usize,
    achieved: f64,
    latency: Summary,
    /// How far behind schedule each message was sent.
    lateness: Summary,
}

/// Each socket sends every `1/rate` s (phases spread evenly); latency counts from the due time.
async fn paced_run(
    path: &'static str,
    kind: Kind,
    sockets: Vec<Ws>,
    size: usize,
    rate: f64,
    warmup: Duration,
    duration: Duration,
) -> (Vec<Ws>, Paced) {
    let frame = Utf8Bytes::from(conn::request_frame(size, kind));
    let conns = sockets.len();
    let period = Duration::from_secs_f64(1.0 / rate);
    let start = tokio::time::Instant::now() + Duration::from_millis(100);
    let measure_from = start + warmup;
    let end = measure_from + duration;
    let tasks: Vec<_> = sockets
        .into_iter()
        .enumerate()
        .map(|(i, ws)| {
            let frame = frame.clone();
            let phase = period.mul_f64(i as f64 / conns as f64);
            tokio::spawn(async move {
                let (mut sink, mut stream) = ws.split();
                let (due_tx, mut due_rx) = mpsc::unbounded_channel::<(tokio::time::Instant, tokio::time::Instant)>();
                let sender = async move {
                    let mut ticks = tokio::time::interval_at(start + phase, period);
                    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
                    let mut sent = 0usize;
                    loop {
                        let due = ticks.tick().await;
                        if due >= end {
                            break;
                        }
                        let _ = due_tx.send((due, tokio::time::Instant::now()));
                        if sink.send(Message::Text(frame.clone())).await.is_err() {
                            break;
                        }
                        if due >= measure_from {
                            sent += 1;
                        }
                    }
                    (sink, sent)
                };
                let receiver = async {
                    let mut samples = Vec::new();
                    let mut lateness = Vec::new();
                    // Ends when the sender is done and every due reply arrived, or 10 s after the end.
                    let cutoff = end + Duration::from_secs(10);
                    while let Some((due, sent_at)) = due_rx.recv().await {
                        let reply = tokio::time::timeout_at(cutoff, async {
                            loop {
                                match stream.next().await {
                                    Some(Ok(Message::Text(_))) => return true,
                                    Some(Ok(Message::Close(_))) | Some(Err(_)) | None => return false,
                                    Some(Ok(_)) => {}
                                }
                            }
                        })
                        .await;
                        if reply != Ok(true) {
                            break;
                        }
                        if due >= measure_from {
                            samples.push(sent_at.elapsed().as_nanos() as u64);
                            lateness.push(sent_at.duration_since(due).as_nanos() as u64);
                        }
                    }
                    (samples, lateness)
                };
                let ((sink, sent), (samples, lateness)) = tokio::join!(sender, receiver);
                (sink.reunite(stream).ok(), sent, samples, lateness)
            })
        })
        .collect();
    let mut back = Vec::new();
    let (mut sent, mut all, mut late) = (0, Vec::new(), Vec::new());
    for task in tasks {
        let (ws, s, samples, lateness) = task.await.expect("paced task");
        sent += s;
        all.extend(samples);
        late.extend(lateness);
        back.extend(ws);
    }
    let received = all.len();
    let result = Paced {
        path,
        kind,
        conns,
        rate,
        size,
        sent,
        received,
        achieved: received as f64 / duration.as_secs_f64(),
        latency: stats::summarize(all),
        lateness: stats::summarize(late),
    };
    (back, result)
}

fn print_and_save(
    args: &Args,
    cells: &[Cell],
    paced: &[Paced],
    roost_peak_rss_kib: Option<u64>,
    memory: &RoostMemory,
) -> anyhow::Result<()> {
    let direct = |kind: Kind, size: usize, conns: usize| {
        cells.iter().find(|c| c.path == "direct" && c.kind == kind && c.size == size && c.conns == conns)
    };
    let ratio = |a: f64, b: f64| if b > 0.0 { a / b } else { f64::NAN };
    let mut table = Table::new(&[
        "path",
        "answer",
        "frame",
        "sockets",
        "msgs/s",
        "x direct",
        "p50",
        "p99",
        "p99.9",
        "p99 x direct",
        "errors",
        "x nginx",
        "proxy CPU/msg",
        "upstream CPU/msg",
        "generator CPU/msg",
    ]);
    let nginx = |kind: Kind, size: usize, conns: usize| {
        cells.iter().find(|c| c.path == "nginx" && c.kind == kind && c.size == size && c.conns == conns)
    };
    let mut rows = Vec::new();
    for c in cells {
        let d = direct(c.kind, c.size, c.conns).context("direct cell")?;
        let tput_ratio = ratio(c.msgs_per_s, d.msgs_per_s);
        let p99_ratio = ratio(c.rtt.p99_us, d.rtt.p99_us);
        table.row(vec![
            c.path.into(),
            c.kind.name().into(),
            format!("{} KiB", c.size / 1024),
            c.conns.to_string(),
            fmt_rate(c.msgs_per_s),
            format!("{tput_ratio:.2}"),
            fmt_us(c.rtt.p50_us),
            fmt_us(c.rtt.p99_us),
            fmt_us(c.rtt.p999_us),
            format!("{p99_ratio:.2}"),
            c.errors.to_string(),
            match (c.path, nginx(c.kind, c.size, c.conns)) {
                ("roost", Some(n)) => format!("{:.2}", ratio(c.msgs_per_s, n.msgs_per_s)),
                _ => "-".into(),
            },
            if c.path == "direct" { "-".into() } else { format!("{:.1} µs", c.cpu.proxy) },
            format!("{:.1} µs", c.cpu.upstream),
            format!("{:.1} µs", c.cpu.generator),
        ]);
        rows.push(json!({
            "path": c.path, "answer": c.kind.name(), "frame_bytes": c.size, "sockets": c.conns, "msgs_per_s": stats::round(c.msgs_per_s),
            "throughput_vs_direct": stats::round(tput_ratio * 100.0) / 100.0, "rtt": c.rtt.json(),
            "p99_vs_direct": stats::round(p99_ratio * 100.0) / 100.0, "errors": c.errors,
            "cpu_us_per_msg": { "proxy": stats::round(c.cpu.proxy), "upstream": stats::round(c.cpu.upstream),
                                "generator": stats::round(c.cpu.generator) },
        }));
    }
    table.print("Relay, closed loop (one request in flight per socket; round trip = request -> its echo as a chat event or a res)");

    let mut paced_table = Table::new(&[
        "path",
        "answer",
        "sockets x rate",
        "sent",
        "received",
        "msgs/s",
        "p50",
        "p99",
        "p99.9",
        "added p99",
        "sender late p99",
    ]);
    let mut paced_rows = Vec::new();
    for p in paced {
        let direct_paced = paced.iter().find(|d| d.path == "direct" && d.kind == p.kind);
        let added = direct_paced.map(|d| p.latency.p99_us - d.latency.p99_us).unwrap_or(f64::NAN);
        paced_table.row(vec![
            p.path.into(),
            p.kind.name().into(),
            format!("{} x {}/s", p.conns, p.rate),
            p.sent.to_string(),
            p.received.to_string(),
            fmt_rate(p.achieved),
            fmt_us(p.latency.p50_us),
            fmt_us(p.latency.p99_us),
            fmt_us(p.latency.p999_us),
            if p.path == "direct" { "-".into() } else { fmt_us(added) },
            fmt_us(p.lateness.p99_us),
        ]);
        paced_rows.push(json!({
            "path": p.path, "answer": p.kind.name(), "sockets": p.conns, "rate_per_socket": p.rate, "frame_bytes": p.size,
            "sent": p.sent, "received": p.received, "msgs_per_s": stats::round(p.achieved),
            "latency": p.latency.json(), "added_p99_us_vs_direct": stats::round(added),
            "sender_lateness": p.lateness.json(),
        }));
    }
    if !paced.is_empty() {
        paced_table.print("Relay, paced (open loop; latency from each send)");
    }
    if let Some(kib) = roost_peak_rss_kib {
        println!("\nRoost peak RSS during the run: {:.0} MiB", kib as f64 / 1024.0);
    }
    let mib = |kib: Option<u64>| kib.map_or("-".into(), |k| format!("{:.1} MiB", k as f64 / 1024.0));
    if memory.before.is_some() {
        println!("Roost RSS before any socket: {} ({} anonymous)", mib(memory.before), mib(memory.before_anon));
        for &(kind, size, conns, kib) in &memory.cells {
            let per_user = memory.per_user_kib(conns, kib).unwrap_or(f64::NAN);
            println!(
                "  after {conns} sockets x {} KiB frames ({}): {} ({per_user:.1} KiB per user above before)",
                size / 1024,
                kind.name(),
                mib(Some(kib))
            );
        }
        if args.settle_secs > 0 {
            println!(
                "  {} s after the last socket closed: {} ({} anonymous)",
                args.settle_secs,
                mib(memory.after),
                mib(memory.after_anon)
            );
        }
    }
    report::write_json(
        &args.json,
        &json!({
            "bench": "relay", "machine": report::machine(),
            "settings": { "duration_s": args.duration, "warmup_s": args.warmup, "sizes": args.sizes, "conns": args.conns,
                          "answers": args.kinds.iter().map(|k| k.name()).collect::<Vec<_>>() },
            "closed_loop": rows, "paced": paced_rows, "roost_peak_rss_kib": roost_peak_rss_kib,
            "roost_rss_kib": {
                "before": memory.before, "after_settle": memory.after, "settle_s": args.settle_secs,
                "before_anon": memory.before_anon, "after_settle_anon": memory.after_anon,
                "cells": memory.cells.iter().map(|&(kind, size, conns, kib)| json!({
                    "answer": kind.name(), "frame_bytes": size, "sockets": conns, "rss_kib": kib,
                    "per_user_above_before_kib": memory.per_user_kib(conns, kib),
                })).collect::<Vec<_>>(),
            },
        }),
    )
}
