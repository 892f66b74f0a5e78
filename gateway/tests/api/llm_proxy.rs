//! `/llm/*`: the metered model proxy, against the fake OpenAI/Anthropic provider.

use std::time::{Duration, Instant};

use fakes::llm::{FailMode, FakeLlm, FakeLlmOptions, RecordedRequest};
use gateway::agent_credentials::llm_credential;
use gateway::domain::UserId;
use gateway::llm::LlmApi;
use reqwest::{Client, RequestBuilder, Response};
use serde_json::{Value, json};

use crate::helpers::{TestApp, contains, error_code};

const OPERATOR_KEY: &str = "sk-operator-4b1d";
const REPLY: &str = "one two three four five";
const CHAT: &str = "/llm/openai/v1/chat/completions";
const MESSAGES: &str = "/llm/anthropic/v1/messages";

/// A Roost server in front of a fake provider, and one signed-up user's agent credential.
struct Proxy {
    app: TestApp,
    fake: FakeLlm,
    user: String,
    credential: String,
    client: Client,
}

impl Proxy {
    async fn start() -> Self {
        Self::start_with(Duration::from_millis(5), &[]).await
    }

    async fn start_with(chunk_delay: Duration, extra_flags: &[&str]) -> Self {
        let fake = FakeLlm::spawn(FakeLlmOptions {
            api_key: OPERATOR_KEY.into(),
            reply: Some(REPLY.into()),
            chunk_delay,
            ..FakeLlmOptions::default()
        })
        .await;
        let openai_base = format!("{}/v1", fake.base_url());
        let anthropic_base = fake.base_url();
        let mut flags = vec![
            "--llm-openai-base-url",
            &openai_base,
            "--llm-openai-api-key",
            OPERATOR_KEY,
            "--llm-anthropic-base-url",
            &anthropic_base,
            "--llm-anthropic-api-key",
            OPERATOR_KEY,
        ];
        flags.extend_from_slice(extra_flags);
        let app = TestApp::spawn_with(&flags).await;
        let (user, credential) = agent(&app, "agent@example.com").await;
        Self { app, fake, user, credential, client: Client::new() }
    }

    fn openai(&self, body: &Value) -> RequestBuilder {
        self.client.post(self.app.url(CHAT)).bearer_auth(&self.credential).json(body)
    }

    fn anthropic(&self, body: &Value) -> RequestBuilder {
        self.client.post(self.app.url(MESSAGES)).header("x-api-key", &self.credential).json(body)
    }

    fn generation_requests(&self) -> Vec<RecordedRequest> {
        self.fake.requests().into_iter().filter(|r| r.method == "POST").collect()
    }
}

/// A signed-up user and the LLM credential their agent would hold.
async fn agent(app: &TestApp, email: &str) -> (String, String) {
    let (_, user) = app.signed_up_user(email).await;
    let credential = llm_credential(&app.state.secret, &UserId::parse(&user).unwrap());
    (user, credential)
}

fn chat(stream: bool) -> Value {
    json!({
        "model": "gpt-test",
        "stream": stream,
        "messages": [
            { "role": "system", "content": "you are terse" },
            { "role": "user", "content": "hello there proxy" }
        ]
    })
}

fn anthropic_chat(stream: bool) -> Value {
    json!({
        "model": "claude-test",
        "max_tokens": 100,
        "stream": stream,
        "system": "you are terse",
        "messages": [{ "role": "user", "content": "hello there proxy" }]
    })
}

/// Prompt words in `chat` / `anthropic_chat` as the fake counts them, and the reply's.
const PROMPT_TOKENS: i64 = 6;
const REPLY_TOKENS: i64 = 5;

#[derive(Debug, PartialEq)]
struct UsageRow {
    user_id: String,
    idempotency_key: String,
    api: String,
    model: Option<String>,
    input_tokens: i64,
    output_tokens: i64,
    upstream_status: i64,
    complete: bool,
}

async fn usage_rows(app: &TestApp) -> Vec<UsageRow> {
    let conn = app.state.db.conn().unwrap();
    let mut rows = conn
        .query(
            "SELECT user_id, idempotency_key, api, model, input_tokens, output_tokens, upstream_status, complete
             FROM usage_events ORDER BY id",
            (),
        )
        .await
        .unwrap();
    let mut out = Vec::new();
    while let Some(row) = rows.next().await.unwrap() {
        out.push(UsageRow {
            user_id: row.get(0).unwrap(),
            idempotency_key: row.get(1).unwrap(),
            api: row.get(2).unwrap(),
            model: row.get(3).unwrap(),
            input_tokens: row.get(4).unwrap(),
            output_tokens: row.get(5).unwrap(),
            upstream_status: row.get(6).unwrap(),
            complete: row.get::<i64>(7).unwrap() == 1,
        });
    }
    out
}

/// Waits for `n` usage rows (they are written after the response), then checks no more follow.
async fn exactly_usage_rows(app: &TestApp, n: usize) -> Vec<UsageRow> {
    let deadline = Instant::now() + Duration::from_secs(10);
    while usage_rows(app).await.len() < n {
        assert!(Instant::now() < deadline, "waited for {n} usage rows");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let rows = usage_rows(app).await;
    assert_eq!(rows.len(), n, "exactly {n} usage rows: {rows:#?}");
    rows
}

/// The `data:` payloads of an SSE body, in order.
fn sse_data(body: &str) -> Vec<String> {
    body.lines().filter_map(|l| l.strip_prefix("data: ")).map(str::to_owned).collect()
}

fn openai_stream_text(body: &str) -> String {
    sse_data(body)
        .iter()
        .filter_map(|d| serde_json::from_str::<Value>(d).ok())
        .filter_map(|c| c["choices"][0]["delta"]["content"].as_str().map(str::to_owned))
        .collect()
}

/// Reads the whole body, whether it ends cleanly or breaks off.
async fn read_to_end(mut res: Response) -> (Vec<u8>, bool) {
    let mut body = Vec::new();
    loop {
        match res.chunk().await {
            Ok(Some(chunk)) => body.extend_from_slice(&chunk),
            Ok(None) => return (body, true),
            Err(_) => return (body, false),
        }
    }
}

#[tokio::test]
async fn openai_streams_pass_through_chunk_by_chunk_and_are_metered_once() {
    let delay = Duration::from_millis(150);
    let proxy = Proxy::start_with(delay, &[]).await;
    let mut res = proxy.openai(&chat(true)).send().await.unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["content-type"], "text/event-stream");

    let mut body = Vec::new();
    let mut first_at = None;
    let mut chunks = 0;
    while let Some(chunk) = res.chunk().await.unwrap() {
        first_at.get_or_insert_with(Instant::now);
        chunks += 1;
        body.extend_from_slice(&chunk);
    }
    let streamed_for = first_at.unwrap().elapsed();
    // Nine events with a delay between each: had the proxy buffered, everything would land at once.
    assert!(streamed_for >= delay * 5, "the first event arrived {streamed_for:?} before the end");
    assert!(chunks >= 6, "the answer came in {chunks} pieces");

    let body = String::from_utf8(body).unwrap();
    assert_eq!(openai_stream_text(&body), REPLY);
    let data = sse_data(&body);
    assert_eq!(data.last().unwrap(), "[DONE]");
    let usage: Value = serde_json::from_str(&data[data.len() - 2]).unwrap();
    assert_eq!(usage["usage"]["prompt_tokens"], PROMPT_TOKENS);
    assert_eq!(usage["usage"]["completion_tokens"], REPLY_TOKENS);

    let sent = proxy.generation_requests();
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].path, "/v1/chat/completions");
    assert_eq!(sent[0].body["stream_options"]["include_usage"], true, "the proxy asks for usage on every stream");

    let rows = exactly_usage_rows(&proxy.app, 1).await;
    let row = &rows[0];
    assert_eq!(row.user_id, proxy.user);
    assert_eq!(row.api, "openai");
    assert_eq!(row.model.as_deref(), Some("gpt-test"));
    assert_eq!((row.input_tokens, row.output_tokens), (PROMPT_TOKENS, REPLY_TOKENS));
    assert_eq!(row.upstream_status, 200);
    assert!(row.complete);
    assert!(uuid::Uuid::parse_str(&row.idempotency_key).is_ok());

    let metrics = proxy.app.state.metrics.render();
    assert!(metrics.contains(r#"llm_requests_total{api="openai",status="200"}"#), "{metrics}");
}

#[tokio::test]
async fn openai_answers_that_are_not_streamed_are_metered() {
    let proxy = Proxy::start().await;
    let res = proxy.openai(&chat(false)).send().await.unwrap();
    assert_eq!(res.status(), 200);
    assert!(res.headers()["content-type"].to_str().unwrap().starts_with("application/json"));
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["choices"][0]["message"]["content"], REPLY);
    assert_eq!(proxy.generation_requests()[0].body, chat(false), "a body the proxy need not change goes up as sent");

    let rows = exactly_usage_rows(&proxy.app, 1).await;
    assert_eq!((rows[0].input_tokens, rows[0].output_tokens, rows[0].complete), (PROMPT_TOKENS, REPLY_TOKENS, true));
}

#[tokio::test]
async fn anthropic_streamed_and_plain_answers_are_metered() {
    let proxy = Proxy::start().await;
    let res = proxy
        .anthropic(&anthropic_chat(true))
        .header("anthropic-version", "2023-06-01")
        .header("anthropic-beta", "prompt-caching-2024-07-31")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["content-type"], "text/event-stream");
    let body = res.text().await.unwrap();
    let text: String = sse_data(&body)
        .iter()
        .filter_map(|d| serde_json::from_str::<Value>(d).ok())
        .filter_map(|e| e["delta"]["text"].as_str().map(str::to_owned))
        .collect();
    assert_eq!(text, REPLY);
    assert!(body.contains("event: message_stop"));

    // Bearer works too, and a missing anthropic-version gets the default.
    let res = proxy
        .client
        .post(proxy.app.url(MESSAGES))
        .bearer_auth(&proxy.credential)
        .json(&anthropic_chat(false))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["content"][0]["text"], REPLY);

    let sent = proxy.generation_requests();
    assert_eq!(sent.len(), 2);
    assert!(sent.iter().all(|r| r.path == "/v1/messages"));
    assert_eq!(sent[0].header("anthropic-version"), Some("2023-06-01"));
    assert_eq!(sent[0].header("anthropic-beta"), Some("prompt-caching-2024-07-31"));
    assert_eq!(sent[1].header("anthropic-version"), Some("2023-06-01"));
    assert_eq!(sent[1].header("anthropic-beta"), None);

    let rows = exactly_usage_rows(&proxy.app, 2).await;
    for row in &rows {
        assert_eq!(row.api, "anthropic");
        assert_eq!(row.model.as_deref(), Some("claude-test"));
        assert_eq!((row.input_tokens, row.output_tokens), (PROMPT_TOKENS, REPLY_TOKENS));
        assert_eq!(row.upstream_status, 200);
        assert!(row.complete);
    }
    assert_ne!(rows[0].idempotency_key, rows[1].idempotency_key);
}

#[tokio::test]
async fn the_provider_gets_the_operator_key_and_never_the_agent_credential() {
    let proxy = Proxy::start().await;
    let res = proxy
        .openai(&chat(true))
        .header("x-custom", "agent-side")
        .header("cookie", "roost_session=abc")
        .header("openai-organization", "org-agent")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    res.text().await.unwrap();
    let res = proxy.anthropic(&anthropic_chat(false)).header("x-custom", "agent-side").send().await.unwrap();
    assert_eq!(res.status(), 200);
    res.text().await.unwrap();
    let res =
        proxy.client.get(proxy.app.url("/llm/openai/v1/models")).bearer_auth(&proxy.credential).send().await.unwrap();
    assert_eq!(res.status(), 200);
    let models: Value = res.json().await.unwrap();
    assert_eq!(models["data"][0]["id"], "fake-model");

    let sent = proxy.fake.requests();
    assert_eq!(sent.len(), 3);
    assert_eq!(sent[0].header("authorization"), Some(format!("Bearer {OPERATOR_KEY}").as_str()));
    assert_eq!(sent[1].header("x-api-key"), Some(OPERATOR_KEY));
    assert_eq!(sent[1].header("authorization"), None);
    assert_eq!(sent[2].header("authorization"), Some(format!("Bearer {OPERATOR_KEY}").as_str()));
    for request in &sent {
        for (name, value) in &request.headers {
            assert!(
                !value.contains("rak_") && !value.contains(&proxy.credential),
                "{name} carries the agent credential"
            );
        }
        for name in ["cookie", "x-custom", "openai-organization"] {
            assert_eq!(request.header(name), None, "{name} was forwarded");
        }
    }
}

#[tokio::test]
async fn only_a_genuine_agent_credential_of_a_live_user_opens_the_proxy() {
    let proxy = Proxy::start().await;
    let app = &proxy.app;
    let refused = |res: Response| async move {
        assert_eq!(error_code(res).await, (401, "invalid_llm_credential".into()));
    };
    let api = Client::new();

    refused(api.post(app.url(CHAT)).json(&chat(false)).send().await.unwrap()).await;
    let forged = format!("rak_{}.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", proxy.user);
    refused(api.post(app.url(CHAT)).bearer_auth(&forged).json(&chat(false)).send().await.unwrap()).await;

    // A signed-in browser session is not an agent.
    let (browser, bob) = app.signed_up_user("bob@example.com").await;
    refused(browser.post(app.url(CHAT)).header("Origin", &app.origin).json(&chat(false)).send().await.unwrap()).await;
    // Nor is an API token.
    let token = app.create_token(&browser, "cli").await;
    let token = token["token"].as_str().unwrap();
    for path in [CHAT, MESSAGES] {
        refused(api.post(app.url(path)).bearer_auth(token).json(&chat(false)).send().await.unwrap()).await;
    }
    refused(api.post(app.url(MESSAGES)).header("x-api-key", token).json(&anthropic_chat(false)).send().await.unwrap())
        .await;

    // One user's tag does not vouch for another user's id.
    let swapped = proxy.credential.replace(&proxy.user, &bob);
    assert_ne!(swapped, proxy.credential);
    refused(api.post(app.url(CHAT)).bearer_auth(&swapped).json(&chat(false)).send().await.unwrap()).await;
    // The OpenAI routes take the credential as Bearer only.
    refused(api.post(app.url(CHAT)).header("x-api-key", &proxy.credential).json(&chat(false)).send().await.unwrap())
        .await;
    refused(api.get(app.url("/llm/openai/v1/models")).send().await.unwrap()).await;

    // A deleted user's credential stops working.
    let conn = app.state.db.conn().unwrap();
    conn.execute("UPDATE users SET deleted_at = 1 WHERE id = ?1", [proxy.user.as_str()]).await.unwrap();
    refused(proxy.openai(&chat(false)).send().await.unwrap()).await;
    refused(proxy.anthropic(&anthropic_chat(false)).send().await.unwrap()).await;

    assert!(proxy.fake.requests().is_empty(), "nothing was forwarded");
    assert!(usage_rows(app).await.is_empty());
}

#[tokio::test]
async fn without_a_configured_provider_calls_get_no_model_configured() {
    let app = TestApp::spawn().await;
    assert_eq!(app.state.llm_api(), None);
    assert_eq!(app.state.llm_model(), None);
    let (_, credential) = agent(&app, "agent@example.com").await;
    let api = Client::new();
    for res in [
        api.post(app.url(CHAT)).bearer_auth(&credential).json(&chat(true)).send().await.unwrap(),
        api.post(app.url(MESSAGES)).header("x-api-key", &credential).json(&anthropic_chat(true)).send().await.unwrap(),
        api.get(app.url("/llm/openai/v1/models")).bearer_auth(&credential).send().await.unwrap(),
    ] {
        assert_eq!(res.status(), 400);
        let body: Value = res.json().await.unwrap();
        assert_eq!(body["error"]["code"], "no_model_configured");
        assert_eq!(
            body["error"]["message"],
            "No model is configured on this Roost server. Set ROOST_LLM_OPENAI_BASE_URL + \
             ROOST_LLM_OPENAI_API_KEY or ROOST_LLM_ANTHROPIC_API_KEY."
        );
    }
    assert!(usage_rows(&app).await.is_empty());
}

#[tokio::test]
async fn the_configured_provider_and_model_are_exposed_for_agent_setup() {
    let proxy = Proxy::start_with(Duration::ZERO, &["--llm-model", "gpt-4o-mini"]).await;
    assert_eq!(proxy.app.state.llm_api(), Some(LlmApi::OpenAi));
    assert_eq!(proxy.app.state.llm_model(), Some("gpt-4o-mini"));

    let app = TestApp::spawn_with(&["--llm-anthropic-api-key", OPERATOR_KEY]).await;
    assert_eq!(app.state.llm_api(), Some(LlmApi::Anthropic));
}

#[tokio::test]
async fn invalid_llm_flags_are_reported_at_start_without_echoing_keys() {
    use clap::Parser;
    let failure = |flags: &[&str]| {
        let mut argv = vec!["roost", "serve", "--listen", "127.0.0.1:0", "--data-dir", "/tmp/roost-never-used"];
        argv.extend_from_slice(flags);
        let gateway::config::Command::Serve(args) = gateway::config::Cli::try_parse_from(argv).unwrap().command else {
            unreachable!()
        };
        async move {
            match gateway::startup::Server::build(&args).await {
                Ok(_) => panic!("invalid flags must fail"),
                Err(e) => format!("{e:#}"),
            }
        }
    };
    let err = failure(&[
        "--llm-openai-base-url",
        "ftp://models.example",
        "--llm-openai-api-key",
        "sk-leak-check",
        "--llm-anthropic-base-url",
        "not a url",
        "--llm-model",
        " ",
        "--llm-upstream-timeout-secs",
        "0",
    ])
    .await;
    for needle in ["--llm-openai-base-url", "--llm-anthropic-base-url", "--llm-model", "--llm-upstream-timeout-secs"] {
        assert!(err.contains(needle), "{needle} missing from: {err}");
    }
    let err = failure(&["--llm-openai-api-key", "sk-leak-check"]).await;
    assert!(err.contains("--llm-openai-base-url"), "{err}");
    let err = failure(&["--llm-openai-base-url", "https://api.openai.com/v1"]).await;
    assert!(err.contains("--llm-openai-api-key"), "{err}");
    let err = failure(&["--llm-anthropic-api-key", "sk-bad\nkey"]).await;
    assert!(err.contains("--llm-anthropic-api-key"), "{err}");
    assert!(!err.contains("sk-bad"), "the key is never echoed: {err}");
}

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
    let app = TestApp::spawn_with(&["--llm-openai-base-url", &closed, "--llm-openai-api-key", OPERATOR_KEY]).await;
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

#[tokio::test]
async fn an_agent_hanging_up_mid_stream_is_still_metered_once() {
    let proxy = Proxy::start_with(Duration::from_millis(50), &[]).await;
    proxy.fake.set_reply(Some(["word"; 60].join(" ")));
    for (path, body) in [(CHAT, chat(true)), (MESSAGES, anthropic_chat(true))] {
        let client = Client::new();
        let mut res = client.post(proxy.app.url(path)).bearer_auth(&proxy.credential).json(&body).send().await.unwrap();
        assert_eq!(res.status(), 200);
        assert!(res.chunk().await.unwrap().is_some());
        drop(res);
        drop(client);
    }
    let rows = exactly_usage_rows(&proxy.app, 2).await;
    for row in &rows {
        assert_eq!((row.upstream_status, row.complete), (200, false));
    }
    assert_eq!(rows[0].api, "openai");
    assert_eq!(rows[1].api, "anthropic");
}

#[tokio::test]
async fn malformed_bodies_are_refused_and_never_forwarded() {
    let proxy = Proxy::start().await;
    let send = |body: &'static str| {
        proxy
            .client
            .post(proxy.app.url(CHAT))
            .bearer_auth(&proxy.credential)
            .header("content-type", "application/json")
            .body(body)
            .send()
    };
    for (body, code) in [
        ("not json", "invalid_json"),
        ("[1, 2]", "invalid_json"),
        (r#"{"messages": []}"#, "invalid_request"),
        (r#"{"model": 4, "messages": []}"#, "invalid_request"),
        (r#"{"model": "gpt-test"}"#, "invalid_request"),
        (r#"{"model": "gpt-test", "messages": "hi"}"#, "invalid_request"),
    ] {
        assert_eq!(error_code(send(body).await.unwrap()).await, (400, code.into()), "{body}");
    }
    let res = proxy
        .client
        .post(proxy.app.url(MESSAGES))
        .header("x-api-key", &proxy.credential)
        .body("{")
        .send()
        .await
        .unwrap();
    assert_eq!(error_code(res).await, (400, "invalid_json".into()));
    assert!(proxy.fake.requests().is_empty());
    assert!(usage_rows(&proxy.app).await.is_empty());
}

#[tokio::test]
async fn bodies_up_to_4_mib_are_forwarded_and_larger_ones_refused() {
    let proxy = Proxy::start().await;
    let limit = gateway::routes::LLM_BODY_LIMIT;
    let with_padding = |len: usize| {
        let mut body = chat(false);
        body["messages"][0]["content"] = json!("");
        let base = body.to_string().len();
        body["messages"][0]["content"] = json!("x".repeat(len - base));
        let bytes = body.to_string();
        assert_eq!(bytes.len(), len);
        bytes
    };
    let res = proxy
        .client
        .post(proxy.app.url(CHAT))
        .bearer_auth(&proxy.credential)
        .body(with_padding(limit + 1))
        .send()
        .await
        .unwrap();
    assert_eq!(error_code(res).await, (413, "body_too_large".into()));
    assert!(proxy.fake.requests().is_empty());

    let res = proxy
        .client
        .post(proxy.app.url(CHAT))
        .bearer_auth(&proxy.credential)
        .body(with_padding(limit))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200, "a body of exactly the limit goes through");
    assert_eq!(proxy.fake.requests().len(), 1);
}

#[tokio::test]
async fn no_response_ever_carries_the_operator_key() {
    let proxy = Proxy::start().await;
    let mut seen = Vec::new();
    let keep = |res: Response| {
        let headers = format!("{:?}", res.headers());
        async move {
            let (body, _) = read_to_end(res).await;
            [headers.into_bytes(), body].concat()
        }
    };
    seen.push(keep(proxy.openai(&chat(true)).send().await.unwrap()).await);
    seen.push(keep(proxy.openai(&chat(false)).send().await.unwrap()).await);
    seen.push(keep(proxy.anthropic(&anthropic_chat(true)).send().await.unwrap()).await);
    for fail in [FailMode::Status(401), FailMode::Status(429), FailMode::Status(500), FailMode::DropMidStream] {
        proxy.fake.fail_next(fail);
        seen.push(keep(proxy.openai(&chat(true)).send().await.unwrap()).await);
    }
    seen.push(
        keep(
            proxy
                .client
                .get(proxy.app.url("/llm/openai/v1/models"))
                .bearer_auth(&proxy.credential)
                .send()
                .await
                .unwrap(),
        )
        .await,
    );
    seen.push(
        keep(proxy.client.post(proxy.app.url(CHAT)).bearer_auth("rak_nope").json(&chat(false)).send().await.unwrap())
            .await,
    );
    for response in &seen {
        assert!(!response.is_empty());
        assert!(!contains(response, OPERATOR_KEY));
    }
}

#[tokio::test]
async fn each_user_has_a_model_call_rate_limit() {
    let proxy = Proxy::start_with(Duration::from_millis(1), &["--llm-rate-per-user", "2"]).await;
    for _ in 0..2 {
        let res = proxy.openai(&chat(false)).send().await.unwrap();
        assert_eq!(res.status(), 200);
    }
    let res = proxy.openai(&chat(false)).send().await.unwrap();
    assert!(res.headers().contains_key("retry-after"));
    assert_eq!(error_code(res).await, (429, "rate_limited".into()));
    assert_eq!(proxy.generation_requests().len(), 2, "the limited call never reached the provider");
    let (_, other) = agent(&proxy.app, "other-agent@example.com").await;
    let res = proxy
        .client
        .post(proxy.app.url("/llm/openai/v1/chat/completions"))
        .bearer_auth(other)
        .json(&chat(false))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200, "another user's agent is not limited");
}
