//! `PUT`/`DELETE /roost/secrets/<name>`, in process: only with the machine's secret, only inside
//! the secrets directory, at most 4 KiB, 0600.

use std::net::SocketAddr;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use roost_agent::router::Context;
use roost_agent::secret::AgentSecret;
use roost_agent::supervisor::{Pause, Stage};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::watch;

use crate::SECRET;

pub struct Sidecar {
    pub addr: SocketAddr,
    /// The volume: the state dir is `state/openclaw`, scratch files go beside it.
    pub volume: tempfile::TempDir,
    pub state: PathBuf,
    /// Every stage the stand-in supervisor went through.
    pub stages: Arc<Mutex<Vec<Stage>>>,
    _shutdown: watch::Sender<bool>,
}

pub async fn sidecar() -> Sidecar {
    sidecar_obeying(true).await
}

/// A sidecar whose stand-in supervisor stops "OpenClaw" for a pause only if it `obeys`.
pub async fn sidecar_obeying(obeys: bool) -> Sidecar {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let volume = tempfile::tempdir().unwrap();
    let state = volume.path().join("openclaw");
    std::fs::create_dir(&state).unwrap();
    let (stage_tx, stage) = watch::channel(Stage::Starting { start: 1 });
    let (shutdown_tx, shutdown) = watch::channel(false);
    let (pause, paused) = Pause::new(Duration::from_millis(500));
    let stages = follow_pause(paused, stage_tx, obeys);
    // Nothing listens upstream: a request that reached OpenClaw would answer 502.
    let upstream = SocketAddr::from(([127, 0, 0, 1], crate::free_port()));
    let ctx = Arc::new(Context {
        secret: AgentSecret::parse(SECRET).unwrap(),
        upstream,
        stage,
        state_dir: state.clone(),
        pause,
        openclaw_version: Some("2026.1.1".into()),
    });
    tokio::spawn(roost_agent::proxy::serve(listener, ctx, 8, shutdown));
    Sidecar { addr, volume, state, stages, _shutdown: shutdown_tx }
}

/// Stands in for the supervisor: "OpenClaw" goes down when a pause is asked for (if `obeys`)
/// and starts again when it ends. Returns the stages it went through.
fn follow_pause(mut paused: watch::Receiver<bool>, stage: watch::Sender<Stage>, obeys: bool) -> Arc<Mutex<Vec<Stage>>> {
    let stages = Arc::new(Mutex::new(vec![Stage::Starting { start: 1 }]));
    let seen = stages.clone();
    tokio::spawn(async move {
        let mut start = 1;
        while paused.changed().await.is_ok() {
            let now = if *paused.borrow_and_update() {
                if !obeys {
                    continue;
                }
                Stage::Paused
            } else {
                start += 1;
                Stage::Starting { start }
            };
            if seen.lock().unwrap().last() != Some(&now) {
                seen.lock().unwrap().push(now.clone());
                let _ = stage.send(now);
            }
        }
    });
    stages
}

/// One request on a fresh connection; the whole answer.
pub async fn send(addr: SocketAddr, method: &str, path: &str, secret: Option<&str>, body: &[u8]) -> String {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let secret = secret.map(|s| format!("x-roost-agent-secret: {s}\r\n")).unwrap_or_default();
    let head = format!(
        "{method} {path} HTTP/1.1\r\nhost: agent.internal:8080\r\n{secret}content-length: {}\r\nconnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    let _ = stream.write_all(body).await;
    let mut got = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut got)).await;
    String::from_utf8_lossy(&got).into_owned()
}

fn files_under(dir: &Path) -> Vec<String> {
    let mut found = Vec::new();
    for entry in walk(dir) {
        found.push(entry.strip_prefix(dir).unwrap().display().to_string());
    }
    found.sort();
    found
}

fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            out.extend(walk(&path));
        } else {
            out.push(path);
        }
    }
    out
}

#[tokio::test]
async fn secret_files_are_written_private_and_deleted_with_the_machines_secret() {
    let sidecar = sidecar().await;
    let token = b"MTk4NjIyNDgzNDcxOTI1MjQ4.Cl2FMQ.ZnCjm1XVW7vRze4b7Cq4se7kKWs";
    let put = send(sidecar.addr, "PUT", "/roost/secrets/discord-ab12.token", Some(SECRET), token).await;
    assert!(put.starts_with("HTTP/1.1 200"), "{put}");
    let path = sidecar.state.as_path().join("roost-secrets/discord-ab12.token");
    assert!(put.contains(&format!("\"path\":\"{}\"", path.display())), "it answers where the agent reads it: {put}");
    assert!(!put.contains("ZnCjm1XVW7"), "the contents are not echoed: {put}");
    assert_eq!(std::fs::read(&path).unwrap(), token);
    assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);

    let replaced = send(sidecar.addr, "PUT", "/roost/secrets/discord-ab12.token", Some(SECRET), b"second").await;
    assert!(replaced.starts_with("HTTP/1.1 200"), "{replaced}");
    assert_eq!(std::fs::read(&path).unwrap(), b"second");

    let deleted = send(sidecar.addr, "DELETE", "/roost/secrets/discord-ab12.token", Some(SECRET), b"").await;
    assert!(deleted.starts_with("HTTP/1.1 200"), "{deleted}");
    assert!(!path.exists());
    let again = send(sidecar.addr, "DELETE", "/roost/secrets/discord-ab12.token", Some(SECRET), b"").await;
    assert!(again.starts_with("HTTP/1.1 200"), "deleting twice is fine: {again}");
    let read = send(sidecar.addr, "GET", "/roost/secrets/discord-ab12.token", Some(SECRET), b"").await;
    assert!(read.starts_with("HTTP/1.1 405"), "secret files cannot be read back: {read}");
}

#[tokio::test]
async fn without_the_secret_nothing_is_written_or_deleted() {
    let sidecar = sidecar().await;
    for secret in [None, Some("nope"), Some(&SECRET[..SECRET.len() - 1])] {
        let put = send(sidecar.addr, "PUT", "/roost/secrets/telegram-ab.token", secret, b"x").await;
        assert!(put.starts_with("HTTP/1.1 401"), "{secret:?}: {put}");
    }
    assert!(files_under(sidecar.state.as_path()).is_empty());
    let path = sidecar.state.as_path().join("roost-secrets/telegram-ab.token");
    roost_agent::secret_files::write(&path, Some(b"kept")).unwrap();
    let delete = send(sidecar.addr, "DELETE", "/roost/secrets/telegram-ab.token", Some("wrong"), b"").await;
    assert!(delete.starts_with("HTTP/1.1 401"), "{delete}");
    assert_eq!(std::fs::read(&path).unwrap(), b"kept");
}

#[tokio::test]
async fn names_that_leave_the_directory_and_large_bodies_are_refused() {
    let sidecar = sidecar().await;
    for path in [
        "/roost/secrets/../openclaw.json",
        "/roost/secrets/..%2Fopenclaw.json",
        "/roost/secrets/%2e%2e/openclaw.json",
        "/roost/secrets/a/b",
        "/roost/secrets/.hidden",
        "/roost/secrets/",
        "/roost/secrets/UPPER",
        "/roost/secrets/x.tmp",
    ] {
        let put = send(sidecar.addr, "PUT", path, Some(SECRET), b"x").await;
        assert!(put.starts_with("HTTP/1.1 400"), "{path}: {put}");
    }
    let big = vec![b'a'; roost_agent::secret_files::MAX_BYTES + 1];
    let put = send(sidecar.addr, "PUT", "/roost/secrets/discord-big.token", Some(SECRET), &big).await;
    assert!(put.starts_with("HTTP/1.1 413"), "{put}");
    let exact = vec![b'a'; roost_agent::secret_files::MAX_BYTES];
    let put = send(sidecar.addr, "PUT", "/roost/secrets/discord-big.token", Some(SECRET), &exact).await;
    assert!(put.starts_with("HTTP/1.1 200"), "{put}");
    assert_eq!(files_under(sidecar.state.as_path()), vec!["roost-secrets/discord-big.token".to_string()]);
}
