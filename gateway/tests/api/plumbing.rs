use serde_json::Value;

use crate::helpers::{TestApp, error_code};

#[tokio::test]
async fn health_and_readiness_answer() {
    let app = TestApp::spawn().await;
    let client = reqwest::Client::new();
    let health: Value = client.get(app.url("/healthz")).send().await.unwrap().json().await.unwrap();
    assert_eq!(health["status"], "ok");
    let ready = client.get(app.url("/readyz")).send().await.unwrap();
    assert_eq!(ready.status(), 200);
}

#[tokio::test]
async fn every_response_carries_a_request_id() {
    let app = TestApp::spawn().await;
    let res = reqwest::Client::new().get(app.url("/healthz")).send().await.unwrap();
    assert!(res.headers().get("x-request-id").is_some_and(|v| v.len() >= 32));
    let res = reqwest::Client::new().get(app.url("/healthz")).header("x-request-id", "abc-123").send().await.unwrap();
    assert_eq!(res.headers().get("x-request-id").unwrap(), "abc-123");
}

#[tokio::test]
async fn unknown_routes_and_methods_answer_in_the_error_shape() {
    let app = TestApp::spawn().await;
    let client = reqwest::Client::new();
    assert_eq!(error_code(client.get(app.url("/api/nope")).send().await.unwrap()).await, (404, "not_found".into()));
    assert_eq!(
        error_code(client.get(app.url("/no-such-page.html")).send().await.unwrap()).await,
        (404, "not_found".into())
    );
    let res = client.put(app.url("/api/me")).header("Origin", &app.origin).send().await.unwrap();
    assert_eq!(error_code(res).await, (405, "method_not_allowed".into()));
}

#[tokio::test]
async fn pages_are_served_with_a_content_security_policy() {
    let app = TestApp::spawn().await;
    let client = reqwest::Client::new();
    for page in ["/", "/login", "/signup", "/settings", "/chat"] {
        let res = client.get(app.url(page)).send().await.unwrap();
        assert_eq!(res.status(), 200, "{page}");
        assert!(res.headers()["content-type"].to_str().unwrap().starts_with("text/html"));
        assert!(res.headers()["content-security-policy"].to_str().unwrap().contains("default-src 'self'"));
        let etag = res.headers()["etag"].clone();
        let again = client.get(app.url(page)).header("if-none-match", etag).send().await.unwrap();
        assert_eq!(again.status(), 304);
    }
}

/// reqwest normalises `..` away, so the request goes out as raw bytes.
#[tokio::test]
async fn paths_that_climb_out_of_the_web_dir_are_not_served() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let app = TestApp::spawn().await;
    for path in ["/../Cargo.toml", "/../gateway/Cargo.toml", "/assets/../../Cargo.toml", "/%2e%2e/Cargo.toml"] {
        let mut stream = tokio::net::TcpStream::connect(app.addr).await.unwrap();
        let request = format!("GET {path} HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n");
        stream.write_all(request.as_bytes()).await.unwrap();
        let mut answer = String::new();
        stream.read_to_string(&mut answer).await.unwrap();
        assert!(answer.starts_with("HTTP/1.1 404"), "{path}: {answer}");
        assert!(!answer.contains("[package]") && !answer.contains("[workspace]"), "{path} leaked a file");
    }
}

#[tokio::test]
async fn invalid_configuration_lists_every_problem() {
    use clap::Parser;
    let argv = [
        "roost",
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--public-origin",
        "ftp://x",
        "--secret-key",
        "abc",
        "--allowed-origins",
        "https://ok.example/path",
        "--data-dir",
        "/tmp/roost-never-used",
    ];
    let gateway::config::Command::Serve(args) = gateway::config::Cli::try_parse_from(argv).unwrap().command else {
        unreachable!()
    };
    let err = match gateway::startup::Server::build(&args).await {
        Ok(_) => panic!("invalid flags must fail"),
        Err(e) => format!("{e:#}"),
    };
    for needle in ["--public-origin", "--secret-key", "--allowed-origins"] {
        assert!(err.contains(needle), "{needle} missing from: {err}");
    }
}

#[tokio::test]
async fn old_webhook_deliveries_and_revocations_are_swept_and_recent_ones_kept() {
    let app = TestApp::spawn().await;
    let now = gateway::domain::now_secs();
    let old = now - 40 * 86_400;
    for (id, at) in [("old", old), ("new", now)] {
        app.sql(&format!(
            "INSERT INTO webhook_events (source, event_id, event_type, received_at) VALUES ('clerk', '{id}', 't', {at})"
        ))
        .await;
        app.sql(&format!("INSERT INTO clerk_revoked_sessions (sid, revoked_at) VALUES ('sess_{id}', {at})")).await;
    }
    gateway::sweeps::run(&app.state).await.unwrap();
    let kept = |table: &str, column: &str| format!("SELECT {column} FROM {table} ORDER BY 1");
    assert_eq!(app.sql(&kept("webhook_events", "event_id")).await, [libsql::Value::Text("new".into())]);
    assert_eq!(app.sql(&kept("clerk_revoked_sessions", "sid")).await, [libsql::Value::Text("sess_new".into())]);
}

#[tokio::test]
async fn an_unexpected_failure_shows_a_request_id_and_nothing_internal() {
    let app = TestApp::spawn().await;
    let (cookie, _) = app.signed_up_cookie("broken@example.com").await;
    app.sql("DROP TABLE api_tokens").await;
    let res = reqwest::Client::new().get(app.url("/api/tokens")).header("cookie", &cookie).send().await.unwrap();
    assert_eq!(res.status(), 500);
    let header_id = res.headers()["x-request-id"].to_str().unwrap().to_string();
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["error"]["code"], "internal");
    assert_eq!(body["error"]["request_id"], header_id.as_str());
    let message = body["error"]["message"].as_str().unwrap();
    assert!(message.contains(&header_id), "{message}");
    for internal in ["api_tokens", "SQL", "no such table", "libsql"] {
        assert!(!body.to_string().contains(internal), "{internal:?} reached the client: {body}");
    }
}
