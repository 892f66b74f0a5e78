//! The Anthropic-compatible endpoint: `/v1/messages`.

use std::sync::Arc;

use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::Response;
use bytes::Bytes;
use serde_json::{Value, json};

use super::Shared;
use super::wire::*;

pub(super) async fn anthropic_messages(
    State(shared): State<Arc<Shared>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let req = record(&shared, &method, &uri, &headers, &body);
    if !shared.accepts(headers.get("x-api-key").and_then(|v| v.to_str().ok())) {
        return provider_error(Flavor::Anthropic, 401, "invalid x-api-key");
    }
    if !headers.contains_key("anthropic-version") {
        return provider_error(Flavor::Anthropic, 400, "anthropic-version: header is required");
    }
    let Some(messages) = req.get("messages").and_then(Value::as_array) else {
        return provider_error(Flavor::Anthropic, 400, "messages: Field required");
    };
    let (resp, drop_mid) = apply_failure(&shared, Flavor::Anthropic).await;
    if let Some(r) = resp {
        return r;
    }
    let model = req.get("model").and_then(Value::as_str).unwrap_or(&shared.model).to_string();
    let text = reply_text(&shared, messages);
    let input_tokens = prompt_tokens(messages, req.get("system"));
    let output_tokens = word_count(&text);
    let id = format!("msg_{}", uuid::Uuid::new_v4().simple());
    let stream = req.get("stream").and_then(Value::as_bool).unwrap_or(false);
    let drop_after = drop_mid.then_some(2);

    if !stream {
        let body = json!({
            "id": id, "type": "message", "role": "assistant", "model": model,
            "content": [{"type": "text", "text": text}],
            "stop_reason": "end_turn", "stop_sequence": null,
            "usage": {"input_tokens": input_tokens, "output_tokens": output_tokens},
        });
        if drop_mid {
            return streaming_response("application/json", split3(body.to_string()), shared.chunk_delay, drop_after);
        }
        return json_response(StatusCode::OK, &[], &body);
    }

    let ev = |name: &str, data: Value| format!("event: {name}\ndata: {data}\n\n");
    let mut frames = vec![
        ev(
            "message_start",
            json!({"type": "message_start", "message": {
                "id": id, "type": "message", "role": "assistant", "content": [], "model": model,
                "stop_reason": null, "stop_sequence": null,
                "usage": {"input_tokens": input_tokens, "output_tokens": 1}}}),
        ),
        ev(
            "content_block_start",
            json!({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}),
        ),
        ev("ping", json!({"type": "ping"})),
    ];
    for w in crate::split_words(&text) {
        frames.push(ev(
            "content_block_delta",
            json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": w}}),
        ));
    }
    frames.push(ev("content_block_stop", json!({"type": "content_block_stop", "index": 0})));
    frames.push(ev(
        "message_delta",
        json!({"type": "message_delta", "delta": {"stop_reason": "end_turn", "stop_sequence": null},
               "usage": {"output_tokens": output_tokens}}),
    ));
    frames.push(ev("message_stop", json!({"type": "message_stop"})));
    streaming_response(
        "text/event-stream",
        frames.into_iter().map(Bytes::from).collect(),
        shared.chunk_delay,
        drop_after,
    )
}
