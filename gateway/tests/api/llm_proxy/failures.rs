//! Provider failures: errors passed through, silence, unreachable, a drop mid-stream.

use super::*;

#[tokio::test]
async fn provider_errors_pass_through_with_their_status_and_body() {
    let proxy = Proxy::start().await;
    proxy.fake.fail_next(FailMode::Status(429));
    let res = proxy.openai(&chat(true)).send().await.unwrap();
    assert_eq!(res.status(), 429);
    assert_eq!(res.headers()["retry-after"], "1");
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["error"]["code"], "rate_limit_exceeded", "the provider's own error");

    proxy.fake.fail_next(FailMode::Status(500));
    let res = proxy.openai(&chat(false)).send().await.unwrap();
    assert_eq!(res.status(), 500);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["error"]["type"], "server_error");

    proxy.fake.fail_next(FailMode::Status(503));
    let res = proxy.anthropic(&anthropic_chat(true)).send().await.unwrap();
    assert_eq!(res.status(), 503);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["error"]["type"], "overloaded_error");

    let rows = exactly_usage_rows(&proxy.app, 3).await;
    let seen: Vec<(i64, bool, i64)> = rows.iter().map(|r| (r.upstream_status, r.complete, r.output_tokens)).collect();
    assert_eq!(seen, [(429, false, 0), (500, false, 0), (503, false, 0)]);
}

#[tokio::test]
async fn a_silent_provider_times_out_with_504() {
    let proxy = Proxy::start_with(Duration::ZERO, &["--llm-upstream-timeout-secs", "1"]).await;
    proxy.fake.fail_next(FailMode::Hang);
    let started = Instant::now();
    let res = proxy.openai(&chat(true)).send().await.unwrap();
    assert_eq!(error_code(res).await, (504, "upstream_timeout".into()));
    assert!(started.elapsed() < Duration::from_secs(5));

    let rows = exactly_usage_rows(&proxy.app, 1).await;
    assert_eq!((rows[0].upstream_status, rows[0].complete), (0, false), "an unanswered call is still on record");
}

#[tokio::test]
async fn an_unreachable_provider_is_a_502() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let closed = format!("http://{}/v1", listener.local_addr().unwrap());
    drop(listener);
    // No --plans: the built-in catalog offers the --llm-model.
    let flags = ["--llm-openai-base-url", &closed, "--llm-openai-api-key", OPERATOR_KEY, "--llm-model", "gpt-test"];
    let app = TestApp::spawn_with(&flags).await;
    let (_, credential) = agent(&app, "agent@example.com").await;
    let res = Client::new().post(app.url(CHAT)).bearer_auth(&credential).json(&chat(false)).send().await.unwrap();
    assert_eq!(error_code(res).await, (502, "upstream_unreachable".into()));
    assert_eq!(exactly_usage_rows(&app, 1).await[0].upstream_status, 0);
}

#[tokio::test]
async fn a_provider_dropping_mid_stream_is_recorded_as_incomplete() {
    let proxy = Proxy::start().await;
    proxy.fake.fail_next(FailMode::DropMidStream);
    let res = proxy.openai(&chat(true)).send().await.unwrap();
    assert_eq!(res.status(), 200);
    let (body, ended_cleanly) = read_to_end(res).await;
    assert!(!ended_cleanly, "the agent sees the break, not a clean end");
    assert!(!contains(&body, "[DONE]"));

    proxy.fake.fail_next(FailMode::DropMidStream);
    let res = proxy.anthropic(&anthropic_chat(true)).send().await.unwrap();
    let (_, ended_cleanly) = read_to_end(res).await;
    assert!(!ended_cleanly);

    let rows = exactly_usage_rows(&proxy.app, 2).await;
    assert_eq!((rows[0].upstream_status, rows[0].complete), (200, false));
    assert_eq!((rows[1].upstream_status, rows[1].complete), (200, false));
    assert_eq!(rows[1].input_tokens, PROMPT_TOKENS, "what Anthropic reported before the break is kept");
}
