//! Opening benchmark sockets on each path, so that every path is driven by the same code.
//!
//! - `direct` and `nginx`: the generator does the OpenClaw handshake itself (Roost's own
//!   `gateway::openclaw::connect`, with a device identity), straight to the echo upstream or
//!   through nginx;
//! - `roost`: `GET /ws` with a session cookie and an allowed Origin, then wait for `roost.ready`
//!   (Roost does the handshake upstream on the user's behalf).

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use futures_util::{StreamExt, TryStreamExt};
use gateway::openclaw::DeviceIdentity;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

pub type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// The echo upstream accepts any token; the direct and nginx paths present this one.
pub const UPSTREAM_TOKEN: &str = "bench-upstream-token";
const OPEN_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Clone)]
pub enum Target {
    /// A `ws://` URL speaking OpenClaw (the upstream itself, or nginx in front of it).
    OpenClaw { name: &'static str, url: String, device: Arc<DeviceIdentity> },
    /// Roost's `/ws`; socket `i` uses the session of user `i`.
    Roost { url: String, origin: String, users: Arc<Vec<User>> },
}

#[derive(Clone)]
pub struct User {
    pub id: String,
    pub cookie: String,
}

impl Target {
    pub fn name(&self) -> &'static str {
        match self {
            Target::OpenClaw { name, .. } => name,
            Target::Roost { .. } => "roost",
        }
    }

    pub fn capacity(&self) -> usize {
        match self {
            Target::OpenClaw { .. } => usize::MAX,
            Target::Roost { users, .. } => users.len(),
        }
    }

    /// Opens socket `index`, ready to relay `req` frames.
    pub async fn open(&self, index: usize) -> anyhow::Result<Ws> {
        tokio::time::timeout(OPEN_TIMEOUT, self.open_inner(index)).await.context("opening timed out")?
    }

    async fn open_inner(&self, index: usize) -> anyhow::Result<Ws> {
        match self {
            Target::OpenClaw { url, device, .. } => {
                Ok(gateway::openclaw::connect(url, UPSTREAM_TOKEN, device).await.context("openclaw handshake")?.socket)
            }
            Target::Roost { url, origin, users } => {
                let user = users.get(index).context("more sockets than seeded users")?;
                let ws_url = url.replacen("http://", "ws://", 1);
                let mut request = format!("{ws_url}/ws").into_client_request()?;
                request.headers_mut().insert("cookie", format!("roost_session={}", user.cookie).parse()?);
                request.headers_mut().insert("origin", origin.parse()?);
                let (mut ws, _) =
                    tokio_tungstenite::connect_async_with_config(request, Some(client_config()), true).await?;
                loop {
                    match ws.try_next().await? {
                        Some(Message::Text(text)) => {
                            if text.as_str().contains(r#""event":"roost.ready""#) {
                                return Ok(ws);
                            }
                            if text.as_str().contains(r#""event":"roost.error""#) {
                                bail!("roost refused: {}", text.as_str());
                            }
                        }
                        Some(Message::Close(frame)) => bail!("closed before ready: {frame:?}"),
                        Some(_) => {}
                        None => bail!("closed before ready"),
                    }
                }
            }
        }
    }
}

/// The generator's socket settings, the same on every path: those `gateway::openclaw::connect`
/// uses (and so the direct and nginx paths), Roost's own agent-side settings.
fn client_config() -> tokio_tungstenite::tungstenite::protocol::WebSocketConfig {
    gateway::openclaw::socket_config()
}

/// Opens `count` sockets with at most `parallel` handshakes in flight; fails on the first error.
pub async fn open_many(target: &Target, count: usize, parallel: usize) -> anyhow::Result<Vec<Ws>> {
    anyhow::ensure!(count <= target.capacity(), "{} needs {count} users, {} seeded", target.name(), target.capacity());
    let started = Instant::now();
    let sockets: Vec<Ws> = futures_util::stream::iter(0..count)
        .map(|i| async move { target.open(i).await.with_context(|| format!("{} socket {i}", target.name())) })
        .buffered(parallel)
        .try_collect()
        .await?;
    eprintln!("  opened {count} {} sockets in {:.1} s", target.name(), started.elapsed().as_secs_f64());
    Ok(sockets)
}

pub async fn close_all(sockets: Vec<Ws>) {
    let closing = futures_util::stream::iter(sockets).for_each_concurrent(256, |mut ws| async move {
        let _ = tokio::time::timeout(Duration::from_secs(2), ws.close(None)).await;
    });
    let _ = tokio::time::timeout(Duration::from_secs(30), closing).await;
}

/// Waits for the next text frame (pings are answered by tungstenite on the way); its length.
pub async fn next_text(ws: &mut Ws) -> anyhow::Result<usize> {
    loop {
        match ws.next().await {
            Some(Ok(Message::Text(text))) => return Ok(text.len()),
            Some(Ok(Message::Close(frame))) => bail!("closed: {frame:?}"),
            Some(Ok(_)) => continue,
            Some(Err(e)) => return Err(e.into()),
            None => bail!("closed"),
        }
    }
}

/// What a relayed frame exercises: the agent's answer to it comes back as a `chat` event
/// (numbered, kept for resume, fanned out: a streamed reply) or as a `res` routed back by id
/// (`chat.send` acks, `sessions.*` and `chat.history` answers).
#[derive(Clone, Copy, PartialEq, Eq, Debug, clap::ValueEnum)]
pub enum Kind {
    Events,
    Responses,
}

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Self::Events => "events",
            Self::Responses => "responses",
        }
    }
}

/// A browser-shaped request of exactly `size` bytes: a `chat.send` (the echo upstream answers
/// it with an event) or a `chat.history` (answered with a `res`).
pub fn request_frame(size: usize, kind: Kind) -> String {
    let head = match kind {
        Kind::Events => {
            r#"{"type":"req","id":"b1","method":"chat.send","params":{"sessionKey":"main","idempotencyKey":"b1","message":""#
        }
        Kind::Responses => {
            r#"{"type":"req","id":"b1","method":"chat.history","params":{"sessionKey":"main","cursor":""#
        }
    };
    let tail = r#""}}"#;
    let filler_len = size.checked_sub(head.len() + tail.len()).expect("frame size too small");
    let words = "the quick brown fox jumps over the lazy dog ";
    let filler: String = words.chars().cycle().take(filler_len).collect();
    let frame = format!("{head}{filler}{tail}");
    debug_assert_eq!(frame.len(), size);
    frame
}

/// Reads `user_id<TAB>cookie` lines written by `roost-bench seed`.
pub fn read_users(path: &Path) -> anyhow::Result<Vec<User>> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    text.lines()
        .filter(|l| !l.is_empty())
        .map(|line| {
            let (id, cookie) = line.split_once('\t').context("a users line is `id<TAB>cookie`")?;
            Ok(User { id: id.into(), cookie: cookie.into() })
        })
        .collect()
}

pub fn device(work_dir: &Path) -> anyhow::Result<Arc<DeviceIdentity>> {
    Ok(Arc::new(DeviceIdentity::load_or_create(&work_dir.join("generator-device"))?))
}

/// VmRSS of a process, in KiB.
pub fn rss_kib(pid: u32) -> anyhow::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    status_field(&status, "VmRSS:").with_context(|| format!("no VmRSS for {pid}"))
}

/// RssAnon of a process (its RSS without file-backed pages such as its code), in KiB.
pub fn rss_anon_kib(pid: u32) -> anyhow::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    status_field(&status, "RssAnon:").with_context(|| format!("no RssAnon for {pid}"))
}

/// VmHWM (peak RSS) of a process, in KiB.
pub fn peak_rss_kib(pid: u32) -> anyhow::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    status_field(&status, "VmHWM:").with_context(|| format!("no VmHWM for {pid}"))
}

fn status_field(status: &str, field: &str) -> Option<u64> {
    status.lines().find_map(|l| l.strip_prefix(field)).and_then(|v| v.split_whitespace().next()?.parse().ok())
}

/// A process and its direct children (nginx: the master and its workers).
pub fn with_children(pid: u32) -> Vec<u32> {
    let mut pids = vec![pid];
    if let Ok(entries) = std::fs::read_dir("/proc") {
        for entry in entries.flatten() {
            let Some(child) = entry.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else { continue };
            let Ok(stat) = std::fs::read_to_string(format!("/proc/{child}/stat")) else { continue };
            // pid (comm) state ppid ...: comm may hold spaces, so split after the last ')'.
            let ppid = stat.rsplit_once(')').and_then(|(_, rest)| rest.split_whitespace().nth(1)?.parse::<u32>().ok());
            if ppid == Some(pid) {
                pids.push(child);
            }
        }
    }
    pids
}

/// CPU time (user + system) used so far by these processes, in microseconds.
pub fn cpu_us(pids: &[u32]) -> u64 {
    let tick_us = 1_000_000 / clock_ticks_per_second();
    pids.iter()
        .filter_map(|pid| {
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
            let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
            // After `pid (comm)`: state is field 3, utime 14, stime 15 (1-based over the whole line).
            let utime: u64 = fields.get(11)?.parse().ok()?;
            let stime: u64 = fields.get(12)?.parse().ok()?;
            Some((utime + stime) * tick_us)
        })
        .sum()
}

fn clock_ticks_per_second() -> u64 {
    // SAFETY: sysconf has no preconditions.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if ticks > 0 { ticks as u64 } else { 100 }
}

pub fn total_rss_kib(pids: &[u32]) -> u64 {
    pids.iter().filter_map(|p| rss_kib(*p).ok()).sum()
}

#[cfg(test)]
mod tests {
    #[test]
    fn frames_have_the_exact_size_and_are_valid_requests() {
        for (kind, method) in [(super::Kind::Events, "chat.send"), (super::Kind::Responses, "chat.history")] {
            for size in [256, 1024, 65536] {
                let frame = super::request_frame(size, kind);
                assert_eq!(frame.len(), size);
                let v: serde_json::Value = serde_json::from_str(&frame).unwrap();
                assert_eq!(v["method"], method);
            }
        }
    }
}
