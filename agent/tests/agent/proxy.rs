//! Admission and forwarding, in process, against a fake OpenClaw that records what reaches it.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use roost_agent::router::Context;
use roost_agent::secret::AgentSecret;
use roost_agent::supervisor::Stage;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

use crate::SECRET;

/// Answers every request with `answer`, keeping each connection's bytes.
struct FakeUpstream {
    addr: SocketAddr,
    seen: Arc<Mutex<Vec<String>>>,
}

impl FakeUpstream {
    async fn spawn(answer: &'static str) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let kept = seen.clone();
        tokio::spawn(async move {
            loop {
                let (mut stream, _) = listener.accept().await.unwrap();
                let kept = kept.clone();
                tokio::spawn(async move {
                    let mut head = Vec::new();
                    let mut buf = [0u8; 4096];
                    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                        match stream.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => head.extend_from_slice(&buf[..n]),
                        }
                    }
                    kept.lock().unwrap().push(String::from_utf8_lossy(&head).into_owned());
                    let _ = stream.write_all(answer.as_bytes()).await;
                    if answer.starts_with("HTTP/1.1 101") {
                        // Echo whatever comes after the upgrade.
                        while let Ok(n) = stream.read(&mut buf).await {
                            if n == 0 || stream.write_all(&buf[..n]).await.is_err() {
                                return;
                            }
                        }
                    }
                });
            }
        });
        Self { addr, seen }
    }

    fn seen(&self) -> Vec<String> {
        self.seen.lock().unwrap().clone()
    }
}

const OK: &str = "HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok";

struct Sidecar {
    addr: SocketAddr,
    _shutdown: watch::Sender<bool>,
    _stage: watch::Sender<Stage>,
}

async fn sidecar(upstream: SocketAddr, max_connections: usize) -> Sidecar {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stage_tx, stage) = watch::channel(Stage::Starting { start: 1 });
    let (shutdown_tx, shutdown) = watch::channel(false);
    let ctx = Arc::new(Context {
        secret: AgentSecret::parse(SECRET).unwrap(),
        upstream,
        stage,
        state_dir: std::env::temp_dir().join("roost-agent-proxy-tests-unused"),
        pause: roost_agent::supervisor::Pause::new(Duration::from_secs(1)).0,
        openclaw_version: None,
    });
    tokio::spawn(roost_agent::proxy::serve(listener, ctx, max_connections, shutdown));
    Sidecar { addr, _shutdown: shutdown_tx, _stage: stage_tx }
}

/// Sends `request` raw and reads until the peer closes or `until` appears.
async fn exchange(stream: &mut TcpStream, request: &str, until: &str) -> String {
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    let read = async {
        while !String::from_utf8_lossy(&got).contains(until) {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => got.extend_from_slice(&buf[..n]),
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(10), read).await.expect("an answer in time");
    String::from_utf8_lossy(&got).into_owned()
}

fn get(path: &str, extra: &str) -> String {
    format!("GET {path} HTTP/1.1\r\nhost: agent.internal:8080\r\n{extra}\r\n")
}

#[tokio::test]
async fn the_secret_is_checked_on_every_request_and_never_forwarded() {
    let upstream = FakeUpstream::spawn(OK).await;
    let sidecar = sidecar(upstream.addr, 8).await;
    let mut stream = TcpStream::connect(sidecar.addr).await.unwrap();
    let with_secret = format!(
        "x-roost-agent-secret: {SECRET}\r\nx-forwarded-for: 203.0.113.7\r\nforwarded: for=203.0.113.7\r\nfly-client-ip: 203.0.113.7\r\n"
    );
    let first = exchange(&mut stream, &get("/healthz", &with_secret), "\r\n\r\nok").await;
    assert!(first.starts_with("HTTP/1.1 200"), "{first}");
    // The same connection, a second request: admitted again, stripped again.
    let second = exchange(&mut stream, &get("/readyz?x=1", &with_secret), "\r\n\r\nok").await;
    assert!(second.starts_with("HTTP/1.1 200"), "{second}");
    let seen = upstream.seen();
    assert_eq!(seen.len(), 2, "{seen:?}");
    assert!(seen[0].starts_with("GET /healthz HTTP/1.1\r\n") && seen[1].starts_with("GET /readyz?x=1 "), "{seen:?}");
    for head in &seen {
        let lower = head.to_ascii_lowercase();
        assert!(
            !lower.contains("x-roost-agent-secret") && !head.contains(SECRET),
            "the secret reached OpenClaw: {head}"
        );
        assert!(!lower.contains("forwarded") && !lower.contains("fly-client-ip"), "a forwarding header: {head}");
        assert!(lower.contains(&format!("host: 127.0.0.1:{}", upstream.addr.port())), "{head}");
    }
    // A wrong secret on the kept-alive connection is refused, and the connection closed.
    let third = exchange(&mut stream, &get("/healthz", "x-roost-agent-secret: nope\r\n"), "\u{0}").await;
    assert!(third.starts_with("HTTP/1.1 401"), "{third}");
    assert_eq!(upstream.seen().len(), 2);
}

#[tokio::test]
async fn without_the_exact_secret_nothing_reaches_openclaw() {
    let upstream = FakeUpstream::spawn(OK).await;
    let sidecar = sidecar(upstream.addr, 8).await;
    let wrong_length = format!("x-roost-agent-secret: {SECRET}x\r\n");
    let one_off = format!("x-roost-agent-secret: {}X\r\n", &SECRET[..SECRET.len() - 1]);
    let twice = format!("x-roost-agent-secret: {SECRET}\r\nx-roost-agent-secret: {SECRET}\r\n");
    let upgrade = "connection: Upgrade\r\nupgrade: websocket\r\nsec-websocket-version: 13\r\nsec-websocket-key: dGhlIHNhbXBsZSBub25jZQ==\r\n";
    for (what, headers) in [
        ("none", String::new()),
        ("empty", "x-roost-agent-secret: \r\n".to_string()),
        ("wrong length", wrong_length),
        ("one character off", one_off),
        ("sent twice", twice),
        ("on an upgrade, none", upgrade.to_string()),
        ("on an upgrade, wrong", format!("{upgrade}x-roost-agent-secret: nope\r\n")),
    ] {
        for path in ["/", "/roost/ready", "/readyz"] {
            let mut stream = TcpStream::connect(sidecar.addr).await.unwrap();
            let answer = exchange(&mut stream, &get(path, &headers), "\u{0}").await;
            assert!(answer.starts_with("HTTP/1.1 401"), "{what} {path}: {answer}");
            assert!(answer.contains("admits only Roost"), "{answer}");
        }
    }
    assert!(upstream.seen().is_empty(), "something was forwarded: {:?}", upstream.seen());
}

#[tokio::test]
async fn an_upgrade_is_joined_end_to_end_without_the_secret() {
    let upstream = FakeUpstream::spawn(
        "HTTP/1.1 101 Switching Protocols\r\nconnection: Upgrade\r\nupgrade: websocket\r\nsec-websocket-accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n",
    )
    .await;
    let sidecar = sidecar(upstream.addr, 8).await;
    let mut stream = TcpStream::connect(sidecar.addr).await.unwrap();
    let headers = format!(
        "connection: Upgrade\r\nupgrade: websocket\r\nsec-websocket-version: 13\r\nsec-websocket-key: dGhlIHNhbXBsZSBub25jZQ==\r\nx-roost-agent-secret: {SECRET}\r\n"
    );
    let answer = exchange(&mut stream, &get("/", &headers), "\r\n\r\n").await;
    assert!(answer.starts_with("HTTP/1.1 101"), "{answer}");
    let echoed = exchange(&mut stream, "raw bytes after the upgrade", "upgrade").await;
    assert_eq!(echoed, "raw bytes after the upgrade");
    let seen = upstream.seen();
    assert!(seen[0].to_ascii_lowercase().contains("upgrade: websocket") && !seen[0].contains(SECRET), "{seen:?}");
}

#[tokio::test]
async fn connections_past_the_limit_are_closed_and_big_heads_refused() {
    let upstream = FakeUpstream::spawn(OK).await;
    let sidecar = sidecar(upstream.addr, 1).await;
    let _held = TcpStream::connect(sidecar.addr).await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    let mut over = TcpStream::connect(sidecar.addr).await.unwrap();
    let answer = exchange(&mut over, &get("/", &format!("x-roost-agent-secret: {SECRET}\r\n")), "\u{0}").await;
    assert_eq!(answer, "", "the connection over the limit was served");
    drop(_held);
    tokio::time::sleep(Duration::from_millis(100)).await;
    let mut big = TcpStream::connect(sidecar.addr).await.unwrap();
    let padding = format!("x-pad: {}\r\nx-roost-agent-secret: {SECRET}\r\n", "a".repeat(64 * 1024));
    let answer = exchange(&mut big, &get("/", &padding), "\u{0}").await;
    assert!(answer.is_empty() || answer.starts_with("HTTP/1.1 431"), "{answer}");
    assert!(upstream.seen().is_empty());
}

#[tokio::test]
async fn readiness_reports_the_stage_until_openclaw_says_ready() {
    let starting = FakeUpstream::spawn(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-length: 46\r\n\r\n{\"ready\":false,\"failing\":[\"startup-sidecars\"]}",
    )
    .await;
    let sidecar_a = sidecar(starting.addr, 8).await;
    let mut stream = TcpStream::connect(sidecar_a.addr).await.unwrap();
    let secret = format!("x-roost-agent-secret: {SECRET}\r\n");
    let answer = exchange(&mut stream, &get("/roost/ready", &secret), "}").await;
    assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
    assert!(answer.contains("\"stage\":\"OpenClaw is starting\"") && answer.contains("startup-sidecars"), "{answer}");

    let ready =
        FakeUpstream::spawn("HTTP/1.1 200 OK\r\ncontent-length: 27\r\n\r\n{\"ready\":true,\"failing\":[]}").await;
    let sidecar_b = sidecar(ready.addr, 8).await;
    let mut stream = TcpStream::connect(sidecar_b.addr).await.unwrap();
    let answer = exchange(&mut stream, &get("/roost/ready", &secret), "}").await;
    assert!(answer.starts_with("HTTP/1.1 200") && answer.contains("{\"ready\":true}"), "{answer}");

    let nothing = SocketAddr::from(([127, 0, 0, 1], crate::free_port()));
    let sidecar_c = sidecar(nothing, 8).await;
    let mut stream = TcpStream::connect(sidecar_c.addr).await.unwrap();
    let answer = exchange(&mut stream, &get("/roost/ready", &secret), "}").await;
    assert!(answer.starts_with("HTTP/1.1 503") && answer.contains("OpenClaw is starting"), "{answer}");
    let mut stream = TcpStream::connect(sidecar_c.addr).await.unwrap();
    let answer = exchange(&mut stream, &get("/anything", &secret), "}").await;
    assert!(answer.starts_with("HTTP/1.1 502"), "{answer}");
    assert!(!answer.contains("127.0.0.1"), "no internal address in an answer: {answer}");
}
