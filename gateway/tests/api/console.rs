//! The agent console at `/agent/*` against a fake agent: what reaches the agent over HTTP, that
//! bodies stream, the rewritten handshake, what comes back, and who may open it at all.

use std::time::Duration;

use futures_util::StreamExt;
use gateway::domain::UserId;
use serde_json::{Value, json};

use crate::console_fake::{ConsoleFake, DEVICE_TOKEN};
use crate::helpers::TestApp;
use crate::ws::Client;

async fn app_with_fake() -> (ConsoleFake, TestApp) {
    let fake = ConsoleFake::spawn().await;
    let app = TestApp::spawn_with(&["--fake-agent-url", &fake.ws_url()]).await;
    (fake, app)
}

fn token_of(app: &TestApp, user_id: &str) -> String {
    gateway::agent_credentials::gateway_token(&app.state.secret, &UserId::parse(user_id).unwrap())
}

async fn console_socket(app: &TestApp, cookie: &str) -> Client {
    Client::connect(&format!("ws://{}/agent", app.addr), &[("cookie", cookie), ("origin", &app.origin)])
        .await
        .expect("the console socket opens")
}

/// What the Control UI sends: its own client, no token it could have, a device of its own.
fn browser_connect(scopes: &[&str]) -> Value {
    json!({ "type": "req", "id": "connect-1", "method": "connect", "params": {
        "minProtocol": 4, "maxProtocol": 4, "role": "operator", "scopes": scopes,
        "client": { "id": "openclaw-control-ui", "version": "control-ui", "platform": "MacIntel", "deviceFamily": "desktop", "mode": "webchat" },
        "caps": ["tool-events"], "auth": { "token": "pasted-by-the-browser" },
        "device": { "id": "browser-device", "publicKey": "AAAA", "signature": "AAAA", "signedAt": 1, "nonce": "browser" },
        "userAgent": "test", "locale": "en" } })
}

/// Opens the console socket and completes the handshake; returns the socket and `hello-ok`.
async fn connected(app: &TestApp, cookie: &str) -> (Client, Value) {
    let mut ws = console_socket(app, cookie).await;
    ws.until_event("connect.challenge").await;
    ws.send(browser_connect(&["operator.read", "operator.write", "operator.admin"])).await;
    let hello = ws.until("hello-ok", |f| f["type"] == "res" && f["id"] == "connect-1").await;
    (ws, hello)
}

#[tokio::test]
async fn the_agent_never_sees_the_browsers_cookies_credentials_or_forwarding_headers() {
    let (fake, app) = app_with_fake().await;
    let (cookie, user_id) = app.signed_up_cookie("headers@example.com").await;
    let res = reqwest::Client::new()
        .post(app.url("/agent/echo?x=1"))
        .header("cookie", &cookie)
        .header("origin", &app.origin)
        .header("x-forwarded-for", "203.0.113.9")
        .header("x-forwarded-proto", "https")
        .header("forwarded", "for=203.0.113.9")
        .header("x-real-ip", "203.0.113.9")
        .header("connection", "x-hop")
        .header("x-hop", "1")
        .header("x-roost-agent-secret", "spoofed")
        .header("x-kept", "yes")
        .body("hello agent")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.text().await.unwrap(), "hello agent");
    let seen = fake.http_seen("/agent/echo");
    let headers = seen.last().expect("the request reached the agent");
    for name in [
        "cookie",
        "origin",
        "authorization",
        "x-forwarded-for",
        "x-forwarded-proto",
        "forwarded",
        "x-real-ip",
        "x-hop",
        "x-roost-agent-secret",
    ] {
        assert!(!headers.contains_key(name), "{name} reached the agent: {headers:?}");
    }
    assert_eq!(headers["x-kept"], "yes");
    assert_eq!(headers["host"], fake.addr.to_string().as_str());

    // A read carries the agent's own token (the Control UI's avatar and media reads want it),
    // and what comes back sets no cookie on Roost's origin but keeps the console's CSP.
    let page = reqwest::Client::new()
        .get(app.url("/agent/"))
        .header("cookie", &cookie)
        .header("accept", "text/html")
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
    assert!(page.headers().get("set-cookie").is_none());
    assert_eq!(page.headers()["content-security-policy"], "default-src 'self'; script-src 'self' 'sha256-fake'");
    assert!(page.text().await.unwrap().contains("OpenClaw Control"));
    let read = fake.http_seen("/agent/");
    let bearer = format!("Bearer {}", token_of(&app, &user_id));
    assert_eq!(read.last().unwrap()["authorization"], bearer.as_str());
    assert!(!read.last().unwrap().contains_key("cookie"));
}

/// Sends `request` as raw bytes (no client normalises its path) and returns the status line.
async fn raw_status(app: &TestApp, request: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(app.addr).await.unwrap();
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut answer = vec![0; 4096];
    let n = stream.read(&mut answer).await.unwrap();
    String::from_utf8_lossy(&answer[..n]).lines().next().unwrap_or_default().to_string()
}

#[tokio::test]
async fn a_path_that_leaves_the_console_never_reaches_the_agent() {
    let (fake, app) = app_with_fake().await;
    let (cookie, _) = app.signed_up_cookie("paths@example.com").await;
    let host = app.addr.to_string();
    for path in [
        "/agent/../sessions/main/history",
        "/agent/%2e%2e/api/health",
        "/agent/x%2f..%2f..%2fhealth",
        "/agent/a\\..\\b",
    ] {
        let request = format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nCookie: {cookie}\r\nConnection: close\r\n\r\n");
        let status = raw_status(&app, &request).await;
        assert!(status.starts_with("HTTP/1.1 400"), "{path}: {status}");
    }
    assert!(
        fake.seen.http.lock().unwrap().is_empty(),
        "nothing reached the agent: {:?}",
        fake.seen.http.lock().unwrap()
    );
    let fine = format!("GET /agent/echo HTTP/1.1\r\nHost: {host}\r\nCookie: {cookie}\r\nConnection: close\r\n\r\n");
    assert!(raw_status(&app, &fine).await.starts_with("HTTP/1.1 200"));
    assert_eq!(fake.http_seen("/agent/echo").len(), 1);
}

#[tokio::test]
async fn bodies_stream_both_ways() {
    let (fake, app) = app_with_fake().await;
    let (cookie, _) = app.signed_up_cookie("stream@example.com").await;

    // Down: the first half arrives while the agent still holds the second.
    let res = reqwest::Client::new().get(app.url("/agent/stream")).header("cookie", &cookie).send().await.unwrap();
    let mut body = res.bytes_stream();
    let first = tokio::time::timeout(Duration::from_secs(10), body.next()).await.expect("the first half, unbuffered");
    assert_eq!(first.unwrap().unwrap().as_ref(), b"first\n");
    fake.seen.release.notify_one();
    let rest = tokio::time::timeout(Duration::from_secs(10), body.next()).await.unwrap().unwrap().unwrap();
    assert_eq!(rest.as_ref(), b"last\n");

    // Up: the agent echoes the first chunk back before the browser has sent the second.
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<bytes::Bytes, std::io::Error>>(2);
    let upload = reqwest::Body::wrap_stream(tokio_stream_from(rx));
    tx.send(Ok(bytes::Bytes::from_static(b"part one;"))).await.unwrap();
    let send = reqwest::Client::new()
        .post(app.url("/agent/echo"))
        .header("cookie", &cookie)
        .header("origin", &app.origin)
        .body(upload)
        .send();
    let res =
        tokio::time::timeout(Duration::from_secs(10), send).await.expect("an answer before the upload ends").unwrap();
    let mut echoed = res.bytes_stream();
    let first = tokio::time::timeout(Duration::from_secs(10), echoed.next()).await.expect("the echo of part one");
    assert_eq!(first.unwrap().unwrap().as_ref(), b"part one;");
    tx.send(Ok(bytes::Bytes::from_static(b"part two"))).await.unwrap();
    drop(tx);
    let second = tokio::time::timeout(Duration::from_secs(10), echoed.next()).await.unwrap().unwrap().unwrap();
    assert_eq!(second.as_ref(), b"part two");
}

fn tokio_stream_from<T: Send + 'static>(
    mut rx: tokio::sync::mpsc::Receiver<T>,
) -> impl futures_util::Stream<Item = T> + Send + 'static {
    futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx))
}

#[tokio::test]
async fn roost_answers_the_handshake_with_its_own_token_and_device() {
    let (fake, app) = app_with_fake().await;
    let (cookie, user_id) = app.signed_up_cookie("handshake@example.com").await;
    let (_ws, hello) = connected(&app, &cookie).await;
    assert_eq!(hello["ok"], true, "{hello}");
    let (connect, verified) = fake.connects().pop().expect("a connect reached the agent");
    assert!(verified, "the device proof verifies over the agent's own challenge: {connect}");
    let params = &connect["params"];
    assert_eq!(params["auth"], json!({ "token": token_of(&app, &user_id) }));
    assert_eq!(params["device"]["id"], app.state.relays.device().id());
    assert_eq!(params["scopes"], json!(["operator.read", "operator.write", "operator.admin"]));
    assert_eq!(params["client"]["id"], "openclaw-control-ui");
    assert_eq!(params["caps"], json!(["tool-events"]));
    assert!(!connect.to_string().contains("pasted-by-the-browser"));
    let upgrade = fake.seen.upgrades.lock().unwrap().last().cloned().unwrap();
    assert_eq!(upgrade["origin"], "http://127.0.0.1", "a loopback origin, never Roost's");
    assert!(!upgrade.contains_key("cookie"));
}

#[tokio::test]
async fn no_credential_of_the_agent_reaches_the_browser() {
    let (_fake, app) = app_with_fake().await;
    let (cookie, user_id) = app.signed_up_cookie("scrub@example.com").await;
    let (mut ws, hello) = connected(&app, &cookie).await;
    assert!(hello["payload"]["auth"].get("deviceToken").is_none(), "{hello}");
    assert_eq!(hello["payload"]["auth"]["scopes"], json!(["operator.read", "operator.write", "operator.admin"]));
    ws.request("r1", "status.leaky", json!({})).await;
    let leaky = ws.until("the answer", |f| f["id"] == "r1").await;
    assert_eq!(leaky["ok"], true);
    let token = token_of(&app, &user_id);
    for frame in &ws.received {
        assert!(!frame.contains(&token), "the gateway token reached the browser: {frame}");
        assert!(!frame.contains(DEVICE_TOKEN), "the device token reached the browser: {frame}");
    }
}

#[tokio::test]
async fn config_writes_to_platform_owned_keys_are_refused_and_others_pass() {
    let (fake, app) = app_with_fake().await;
    let (cookie, _) = app.signed_up_cookie("config@example.com").await;
    let (mut ws, _) = connected(&app, &cookie).await;
    ws.request("g1", "config.get", json!({})).await;
    ws.until("config", |f| f["id"] == "g1").await;

    let owned = json!({ "gateway": { "auth": { "mode": "none" } } }).to_string();
    ws.request("p1", "config.patch", json!({ "raw": owned, "baseHash": "h1" })).await;
    let refused = ws.until("refusal", |f| f["id"] == "p1").await;
    assert_eq!(refused["ok"], false);
    assert_eq!(refused["error"]["code"], "FORBIDDEN");
    let message = refused["error"]["message"].as_str().unwrap();
    assert!(message.contains("gateway.auth") && message.contains("Roost manages"), "{message}");

    let mut whole = json!({ "gateway": { "mode": "local", "bind": "lan", "port": 18789, "auth": { "mode": "token" },
                                         "controlUi": { "enabled": true, "basePath": "/agent" } } });
    ws.request("s1", "config.set", json!({ "raw": whole.to_string(), "baseHash": "h1" })).await;
    let refused = ws.until("refusal", |f| f["id"] == "s1").await;
    assert!(refused["error"]["message"].as_str().unwrap().contains("gateway.bind"), "{refused}");

    let mine = json!({ "ui": { "assistant": { "name": "Pip" } } }).to_string();
    ws.request("p2", "config.patch", json!({ "raw": mine, "baseHash": "h1" })).await;
    assert_eq!(ws.until("saved", |f| f["id"] == "p2").await["ok"], true);
    whole["gateway"]["bind"] = json!("loopback");
    whole["ui"] = json!({ "assistant": { "name": "Pip" } });
    ws.request("s2", "config.set", json!({ "raw": whole.to_string(), "baseHash": "h1" })).await;
    assert_eq!(ws.until("saved", |f| f["id"] == "s2").await["ok"], true);

    let methods = fake.methods();
    assert_eq!(methods, ["config.get", "config.patch", "config.set"], "only the allowed writes reached the agent");
}

#[tokio::test]
async fn a_changed_agent_configuration_closes_the_console_for_a_reconnect() {
    let (_fake, app) = app_with_fake().await;
    let (cookie, _) = app.signed_up_cookie("close@example.com").await;
    let (mut ws, _) = connected(&app, &cookie).await;
    ws.request("x", "test.close4001", json!({})).await;
    assert_eq!(ws.closed().await.0, 1012, "4001 becomes the close the UI reconnects after");
    let (_again, hello) = connected(&app, &cookie).await;
    assert_eq!(hello["ok"], true);
}

#[tokio::test]
async fn the_console_needs_a_login_and_reaches_only_the_users_own_agent() {
    let (fake, app) = app_with_fake().await;
    let anonymous = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let page = anonymous.get(app.url("/agent/")).header("accept", "text/html").send().await.unwrap();
    assert!(page.status().is_redirection(), "{}", page.status());
    assert_eq!(page.headers()["location"], "/login");
    let api = anonymous.get(app.url("/agent/echo")).send().await.unwrap();
    assert_eq!(api.status(), 401);
    assert_eq!(api.json::<Value>().await.unwrap()["error"]["code"], "unauthenticated");
    let socket = Client::connect(&format!("ws://{}/agent", app.addr), &[("origin", &app.origin)]).await;
    assert!(socket.is_err(), "no socket without a login");
    assert!(fake.seen.http.lock().unwrap().is_empty() && fake.connects().is_empty(), "nothing reached the agent");

    let (alice, alice_id) = app.signed_up_cookie("alice-console@example.com").await;
    let (bob, bob_id) = app.signed_up_cookie("bob-console@example.com").await;
    // Another site's page may not open it with the user's cookie.
    let foreign =
        Client::connect(&format!("ws://{}/agent", app.addr), &[("cookie", &alice), ("origin", "https://evil.example")])
            .await;
    assert!(foreign.is_err());
    for (cookie, id) in [(&alice, &alice_id), (&bob, &bob_id)] {
        let res =
            reqwest::Client::new().get(app.url("/agent/echo")).header("cookie", cookie.as_str()).send().await.unwrap();
        assert_eq!(res.status(), 200);
        let seen = fake.http_seen("/agent/echo");
        assert_eq!(seen.last().unwrap()["authorization"], format!("Bearer {}", token_of(&app, id)).as_str());
        let (_ws, hello) = connected(&app, cookie).await;
        assert_eq!(hello["ok"], true);
        let (connect, _) = fake.connects().pop().unwrap();
        assert_eq!(connect["params"]["auth"]["token"], token_of(&app, id), "each user reaches their own agent only");
    }
    assert_ne!(token_of(&app, &alice_id), token_of(&app, &bob_id));
}

/// The open console's lazily loaded scripts must not fail while its agent wakes or restarts.
#[tokio::test]
async fn a_script_asked_for_while_the_agent_sleeps_or_restarts_waits_for_it() {
    let (fake, app) = app_with_fake().await;
    let (cookie, user_id) = app.signed_up_cookie("lazy@example.com").await;
    let user = UserId::parse(&user_id).unwrap();
    let get = || reqwest::Client::new().get(app.url("/agent/echo")).header("cookie", &cookie).send();
    assert_eq!(get().await.unwrap().status(), 200);

    app.state.machines.stop(&user).await.unwrap();
    assert!(app.state.machines.address_if_ready(&user).await.is_none(), "the agent is stopped");
    let woken = get().await.unwrap();
    assert_eq!(woken.status(), 200, "the read waited for the wake: {:?}", woken.text().await);
    assert!(app.state.machines.address_if_ready(&user).await.is_some(), "the read woke the agent");

    // OpenClaw restarting its gateway refuses connections for a moment.
    fake.restart(Duration::from_millis(1500));
    let during = get().await.unwrap();
    assert_eq!(during.status(), 200, "the read outlasted the restart: {:?}", during.text().await);

    // An answer cut off midway is asked for again, not passed on broken.
    let script =
        reqwest::Client::new().get(app.url("/agent/cut-once.js")).header("cookie", &cookie).send().await.unwrap();
    assert_eq!(script.status(), 200);
    assert!(script.text().await.unwrap().starts_with("export const ok"), "the whole script arrived");
    assert_eq!(fake.seen.cut_requests.load(std::sync::atomic::Ordering::SeqCst), 2, "asked for twice");

    // A write is never sent twice: it fails in words at once.
    fake.restart(Duration::from_millis(1500));
    let write = reqwest::Client::new()
        .post(app.url("/agent/echo"))
        .header("cookie", &cookie)
        .header("origin", &app.origin)
        .body("once")
        .send()
        .await
        .unwrap();
    assert_eq!(crate::helpers::error_code(write).await, (503, "agent_unreachable".into()));
}
