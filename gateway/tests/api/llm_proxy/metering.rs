//! Every answer is metered once: OpenAI and Anthropic, streamed or not, even when the agent
//! hangs up mid-stream.

use super::*;

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
