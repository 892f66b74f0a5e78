//! `/metrics` is private and its size is bounded whatever clients send.

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::helpers::{TestApp, error_code};

const TOKEN: &str = "a-metrics-token-for-tests";

#[tokio::test]
async fn metrics_are_off_by_default() {
    let app = TestApp::spawn().await;
    let res = reqwest::get(app.url("/metrics")).await.unwrap();
    assert_eq!(error_code(res).await.0, 404);
}

#[tokio::test]
async fn a_metrics_token_opens_metrics_on_the_main_listener_to_its_holder_only() {
    let app = TestApp::spawn_with(&["--metrics-token", TOKEN]).await;
    let client = reqwest::Client::new();
    client.get(app.url("/readyz")).send().await.unwrap();
    let res = client.get(app.url("/metrics")).send().await.unwrap();
    assert_eq!(error_code(res).await, (401, "unauthenticated".into()));
    let res = client.get(app.url("/metrics")).bearer_auth("a-metrics-token-for-testZ").send().await.unwrap();
    assert_eq!(res.status(), 401);
    let metrics = client.get(app.url("/metrics")).bearer_auth(TOKEN).send().await.unwrap().text().await.unwrap();
    assert!(metrics.contains("http_requests_total"), "{metrics}");
    assert!(metrics.contains("route=\"/readyz\""), "labels use the route template: {metrics}");
}

#[tokio::test]
async fn a_metrics_listener_serves_metrics_apart_from_the_main_one() {
    let app = TestApp::spawn_with(&["--metrics-listen", "127.0.0.1:0"]).await;
    let metrics_addr = app.metrics_addr.expect("a metrics listener");
    assert_eq!(reqwest::get(app.url("/metrics")).await.unwrap().status(), 404);
    let res = reqwest::get(format!("http://{metrics_addr}/metrics")).await.unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(reqwest::get(format!("http://{metrics_addr}/api/me")).await.unwrap().status(), 404);
}

/// The probe: 40,000 requests with made-up 1–4 KB methods made one scrape 1 GB.
#[tokio::test]
async fn made_up_methods_do_not_grow_the_metrics() {
    let app = TestApp::spawn_with(&["--metrics-token", TOKEN]).await;
    for i in 0..40 {
        let method = format!("X{i}{}", "M".repeat(1024));
        let mut stream = tokio::net::TcpStream::connect(app.addr).await.unwrap();
        let request = format!("{method} /healthz HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n");
        stream.write_all(request.as_bytes()).await.unwrap();
        let mut answer = Vec::new();
        stream.read_to_end(&mut answer).await.unwrap();
        assert!(answer.starts_with(b"HTTP/1.1 "), "{}", String::from_utf8_lossy(&answer));
    }
    let metrics = app.state.metrics.render();
    assert!(!metrics.contains("MMMM"), "a raw method became a label");
    assert!(metrics.contains("method=\"other\""), "{metrics}");
    let longest = metrics.lines().map(str::len).max().unwrap_or(0);
    assert!(longest < 512, "a metrics line of {longest} bytes");
}
