//! The OpenAI-compatible endpoints: `/v1/models` and `/v1/chat/completions`.

use std::sync::Arc;

use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri, header};
use axum::response::Response;
use bytes::Bytes;
use serde_json::{Value, json};

use super::wire::*;
use super::{Shared, ToolCall, lock};

pub(super) async fn not_found(uri: Uri) -> Response {
    json_response(
        StatusCode::NOT_FOUND,
        &[],
        &json!({"error": {"message": format!("Unknown request URL: {}", uri.path()), "type": "invalid_request_error",
                          "param": null, "code": "unknown_url"}}),
    )
}

const OPENAI_BAD_KEY: &str =
    "Incorrect API key provided. You can find your API key at https://platform.openai.com/account/api-keys.";

fn bearer(headers: &HeaderMap) -> Option<&str> {
    headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).and_then(|v| v.strip_prefix("Bearer "))
}

/// The model list in either provider's shape: Anthropic's when called with `x-api-key`.
pub(super) async fn models(
    State(shared): State<Arc<Shared>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    record(&shared, &method, &uri, &headers, &Bytes::new());
    if *lock(&shared.hang_model_lists) {
        let mut rx = shared.shutdown.subscribe();
        let _ = rx.wait_for(|stopped| *stopped).await;
        return provider_error(Flavor::OpenAi, 503, "fake llm shutting down");
    }
    let models = shared.listed_models();
    if let Some(key) = headers.get("x-api-key") {
        if !shared.accepts(key.to_str().ok()) {
            return provider_error(Flavor::Anthropic, 401, "invalid x-api-key");
        }
        let data: Vec<Value> = models
            .iter()
            .map(|id| json!({"type": "model", "id": id, "display_name": id, "created_at": "2025-01-01T00:00:00Z"}))
            .collect();
        let (first, last) = (models.first(), models.last());
        return json_response(
            StatusCode::OK,
            &[],
            &json!({"data": data, "has_more": false, "first_id": first, "last_id": last}),
        );
    }
    if !shared.accepts(bearer(&headers)) {
        return provider_error(Flavor::OpenAi, 401, OPENAI_BAD_KEY);
    }
    let data: Vec<Value> =
        models.iter().map(|id| json!({"id": id, "object": "model", "created": 0, "owned_by": "fake"})).collect();
    json_response(StatusCode::OK, &[], &json!({"object": "list", "data": data}))
}

pub(super) async fn chat_completions(
    State(shared): State<Arc<Shared>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let req = record(&shared, &method, &uri, &headers, &body);
    if !shared.accepts(bearer(&headers)) {
        return provider_error(Flavor::OpenAi, 401, OPENAI_BAD_KEY);
    }
    let Some(messages) = req.get("messages").and_then(Value::as_array) else {
        return provider_error(Flavor::OpenAi, 400, "'messages' is a required property");
    };
    let (resp, drop_mid) = apply_failure(&shared, Flavor::OpenAi).await;
    if let Some(r) = resp {
        return r;
    }
    let model = req.get("model").and_then(Value::as_str).unwrap_or(&shared.model).to_string();
    let offers_tools = req.get("tools").and_then(Value::as_array).is_some_and(|t| !t.is_empty());
    if offers_tools && let Some(call) = lock(&shared.tool_calls).pop_front() {
        return tool_call_stream(&shared, &model, messages, &call);
    }
    let text = reply_text(&shared, messages);
    let prompt = prompt_tokens(messages, None);
    let completion = word_count(&text);
    let usage = json!({"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion});
    let id = format!("chatcmpl-{}", uuid::Uuid::new_v4().simple());
    let created = now_secs();
    let stream = req.get("stream").and_then(Value::as_bool).unwrap_or(false);
    let drop_after = drop_mid.then_some(2);

    if !stream {
        let body = json!({
            "id": id, "object": "chat.completion", "created": created, "model": model,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": text, "refusal": null},
                         "logprobs": null, "finish_reason": "stop"}],
            "usage": usage,
        });
        if drop_mid {
            return streaming_response("application/json", split3(body.to_string()), shared.chunk_delay, drop_after);
        }
        return json_response(StatusCode::OK, &[], &body);
    }

    let include_usage = req.pointer("/stream_options/include_usage").and_then(Value::as_bool).unwrap_or(false);
    let chunk = |delta: Value, finish: Value| {
        let mut c = json!({"id": id, "object": "chat.completion.chunk", "created": created, "model": model,
                           "choices": [{"index": 0, "delta": delta, "logprobs": null, "finish_reason": finish}]});
        if include_usage {
            c["usage"] = Value::Null;
        }
        format!("data: {c}\n\n")
    };
    let mut frames = vec![chunk(json!({"role": "assistant", "content": ""}), Value::Null)];
    for w in crate::split_words(&text) {
        frames.push(chunk(json!({"content": w}), Value::Null));
    }
    frames.push(chunk(json!({}), json!("stop")));
    if include_usage {
        let u = json!({"id": id, "object": "chat.completion.chunk", "created": created, "model": model,
                       "choices": [], "usage": usage});
        frames.push(format!("data: {u}\n\n"));
    }
    frames.push("data: [DONE]\n\n".to_string());
    streaming_response(
        "text/event-stream",
        frames.into_iter().map(Bytes::from).collect(),
        shared.chunk_delay,
        drop_after,
    )
}

/// A streamed answer that is one tool call, as OpenAI sends it (name first, then arguments).
pub(super) fn tool_call_stream(shared: &Shared, model: &str, messages: &[Value], call: &ToolCall) -> Response {
    let id = format!("chatcmpl-{}", uuid::Uuid::new_v4().simple());
    let call_id = &call.id;
    let created = now_secs();
    let chunk = |delta: Value, finish: Value| {
        let c = json!({"id": id, "object": "chat.completion.chunk", "created": created, "model": model,
                       "choices": [{"index": 0, "delta": delta, "logprobs": null, "finish_reason": finish}]});
        Bytes::from(format!("data: {c}\n\n"))
    };
    let prompt = prompt_tokens(messages, None);
    let usage = json!({"id": id, "object": "chat.completion.chunk", "created": created, "model": model, "choices": [],
                       "usage": {"prompt_tokens": prompt, "completion_tokens": 10, "total_tokens": prompt + 10}});
    let frames = vec![
        chunk(
            json!({"role": "assistant", "content": null, "tool_calls": [{"index": 0, "id": call_id, "type": "function",
                   "function": {"name": call.name, "arguments": ""}}]}),
            Value::Null,
        ),
        chunk(
            json!({"tool_calls": [{"index": 0, "function": {"arguments": call.arguments.to_string()}}]}),
            Value::Null,
        ),
        chunk(json!({}), json!("tool_calls")),
        Bytes::from(format!("data: {usage}\n\n")),
        Bytes::from_static(b"data: [DONE]\n\n"),
    ];
    streaming_response("text/event-stream", frames, shared.chunk_delay, None)
}
