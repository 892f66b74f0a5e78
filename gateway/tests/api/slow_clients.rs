//! Clients that never finish a request cannot hold the server's connections.

use std::time::Duration;

use futures_util::StreamExt;
use futures_util::stream::FuturesUnordered;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::Instant;

use crate::helpers::TestApp;
use crate::ws::Client;

const DEADLINE: Duration = Duration::from_secs(20);

/// A connection that sent one header line and then nothing.
async fn slow_client(app: &TestApp) -> TcpStream {
    let mut stream = TcpStream::connect(app.addr).await.unwrap();
    stream.write_all(b"GET /healthz HTTP/1.1\r\n").await.unwrap();
    stream
}

/// Resolves when the server closes `stream` (end of file or reset).
async fn closed_by_server(mut stream: TcpStream) {
    let mut buf = [0u8; 1024];
    while let Ok(n) = stream.read(&mut buf).await
        && n > 0
    {}
}

/// How many of `streams` the server closes before the deadline.
async fn count_closed(streams: Vec<TcpStream>, enough: usize) -> usize {
    let mut closing: FuturesUnordered<_> = streams.into_iter().map(closed_by_server).collect();
    let deadline = Instant::now() + DEADLINE;
    let mut closed = 0;
    while closed < enough {
        match tokio::time::timeout_at(deadline, closing.next()).await {
            Ok(Some(())) => closed += 1,
            _ => break,
        }
    }
    closed
}

/// The probe: 19,990 such connections took every descriptor and `/healthz` timed out. Here,
/// bounded: 300 against a cap of 32, with a header timeout far beyond the test.
#[tokio::test]
async fn slow_clients_are_shed_and_healthz_keeps_answering() {
    let app = TestApp::spawn_with(&["--max-connections", "32", "--header-read-timeout-secs", "600"]).await;
    let mut slow = Vec::new();
    for _ in 0..300 {
        slow.push(slow_client(&app).await);
    }
    let client = reqwest::Client::builder().timeout(DEADLINE).build().unwrap();
    let res = client.get(app.url("/healthz")).send().await.expect("/healthz answers");
    assert_eq!(res.status(), 200);
    let closed = count_closed(slow, 300 - 32).await;
    assert!(closed >= 300 - 32, "the server still holds {} slow connections", 300 - closed);
}

#[tokio::test]
async fn unfinished_headers_and_idle_connections_are_closed() {
    let app = TestApp::spawn_with(&["--header-read-timeout-secs", "1"]).await;
    let unfinished = slow_client(&app).await;
    let mut idle = TcpStream::connect(app.addr).await.unwrap();
    idle.write_all(b"GET /healthz HTTP/1.1\r\nhost: x\r\n\r\n").await.unwrap();
    let mut answer = [0u8; 12];
    idle.read_exact(&mut answer).await.unwrap();
    assert_eq!(&answer, b"HTTP/1.1 200");
    assert_eq!(count_closed(vec![unfinished, idle], 2).await, 2);
}

#[tokio::test]
async fn websockets_have_room_of_their_own() {
    let app = TestApp::spawn_with(&["--max-connections", "4", "--max-websockets", "2"]).await;
    let (cookie, _) = app.signed_up_cookie("ws-room@example.com").await;
    let mut first = app.ws(&cookie, "").await;
    first.ready().await;
    let mut slow = Vec::new();
    for _ in 0..20 {
        slow.push(slow_client(&app).await);
    }
    let mut second = app.ws(&cookie, "").await;
    second.ready().await;
    assert!(first.chat("main", "still there?").await.starts_with("Hello"), "slow clients did not evict it");

    let url = format!("ws://{}/ws", app.addr);
    let headers = [("cookie", cookie.as_str()), ("origin", app.origin.as_str())];
    match Client::connect(&url, &headers).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(res)) => assert_eq!(res.status(), 503),
        Err(other) => panic!("a third WebSocket failed oddly: {other}"),
        Ok(_) => panic!("a third WebSocket was accepted over --max-websockets 2"),
    }
    drop(first);
    let deadline = Instant::now() + DEADLINE;
    let mut third = loop {
        match Client::connect(&url, &headers).await {
            Ok(socket) => break socket,
            Err(_) if Instant::now() < deadline => tokio::task::yield_now().await,
            Err(e) => panic!("no room after a WebSocket closed: {e}"),
        }
    };
    third.ready().await;
    let res = reqwest::get(app.url("/healthz")).await.unwrap();
    assert_eq!(res.status(), 200);
}
