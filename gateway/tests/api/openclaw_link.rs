//! Roost's server-side handshake against the fake OpenClaw gateway's failure modes.

use std::time::Duration;

use fakes::openclaw::{FakeOpenClaw, FakeOpenClawOptions};
use gateway::openclaw::{ConnectError, DeviceIdentity, connect, connect_with_retry};

fn device() -> DeviceIdentity {
    DeviceIdentity::load_or_create(tempfile::tempdir().unwrap().path()).unwrap()
}

fn options(token: &str) -> FakeOpenClawOptions {
    FakeOpenClawOptions { token: token.into(), ..FakeOpenClawOptions::default() }
}

#[tokio::test]
async fn the_handshake_signs_the_nonce_and_sends_no_browser_headers() {
    let agent = FakeOpenClaw::spawn(options("tok")).await;
    let upstream = connect(&agent.ws_url(), "tok", &device()).await.unwrap();
    assert_eq!(upstream.hello["auth"]["scopes"], serde_json::json!(["operator.read", "operator.write"]));
    assert!(!agent.saw_forbidden_headers());
    let (method, params) = &agent.requests_seen()[0];
    assert_eq!(method, "connect");
    assert_eq!(params["client"]["id"], "gateway-client");
    assert_eq!(params["client"]["mode"], "backend");
    assert_eq!(params["minProtocol"], 4);
}

#[tokio::test]
async fn a_wrong_token_is_refused() {
    let agent = FakeOpenClaw::spawn(options("right")).await;
    let err = connect(&agent.ws_url(), "wrong", &device()).await.err().unwrap();
    assert!(matches!(err, ConnectError::Refused { .. }), "{err}");
}

#[tokio::test]
async fn cleared_scopes_are_caught_even_though_hello_ok_arrived() {
    let agent = FakeOpenClaw::spawn(FakeOpenClawOptions { clear_scopes: true, ..options("tok") }).await;
    let err = connect(&agent.ws_url(), "tok", &device()).await.err().unwrap();
    assert!(matches!(err, ConnectError::ScopesMissing { .. }), "{err}");
}

#[tokio::test]
async fn gateway_starting_1013_is_retried_until_it_succeeds() {
    let agent = FakeOpenClaw::spawn(FakeOpenClawOptions { starting_rejections: 2, ..options("tok") }).await;
    let device = device();
    assert!(matches!(connect(&agent.ws_url(), "tok", &device).await, Err(ConnectError::Starting)));
    let upstream = connect_with_retry(&agent.ws_url(), "tok", &device, None, Duration::from_secs(10)).await.unwrap();
    assert_eq!(upstream.hello["type"], "hello-ok");
    assert_eq!(agent.handshakes_ok(), 1);
}

#[tokio::test]
async fn an_unreachable_agent_fails_within_the_deadline() {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let started = std::time::Instant::now();
    let err = connect_with_retry(&format!("ws://127.0.0.1:{port}/"), "tok", &device(), None, Duration::from_secs(1))
        .await
        .err()
        .unwrap();
    assert!(matches!(err, ConnectError::Unreachable(_)), "{err}");
    assert!(started.elapsed() < Duration::from_secs(5));
}
