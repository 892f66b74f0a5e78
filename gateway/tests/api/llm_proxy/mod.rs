//! `/llm/*`: the metered model proxy, against the fake OpenAI/Anthropic provider. This file
//! holds the harness: a Roost in front of a fake provider, request bodies, usage rows, SSE.

mod access;
mod bodies;
mod credits;
mod failures;
mod metering;
mod setup;

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
        let plans = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/api/fixtures/plans.toml");
        let mut flags = if extra_flags.contains(&"--plans") { vec![] } else { vec!["--plans", plans] };
        flags.extend_from_slice(&[
            "--llm-openai-base-url",
            &openai_base,
            "--llm-openai-api-key",
            OPERATOR_KEY,
            "--llm-anthropic-base-url",
            &anthropic_base,
            "--llm-anthropic-api-key",
            OPERATOR_KEY,
        ]);
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
