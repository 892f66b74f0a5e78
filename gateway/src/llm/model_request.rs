//! The body of a model call, checked before anything goes upstream.

use bytes::Bytes;
use serde_json::{Map, Value};

use super::LlmApi;
use crate::error::{AppError, AppResult};

/// Model ids are short; the cap keeps an agent from storing megabytes in `usage_events.model`.
const MAX_MODEL_ID_LEN: usize = 256;

pub struct ModelRequest {
    pub model: String,
    /// What goes upstream: the agent's own bytes, unless the proxy had to add something.
    pub body: Bytes,
}

impl ModelRequest {
    /// A JSON object with a string `model` and a `messages` array, or a 400.
    pub fn parse(api: LlmApi, body: Bytes) -> AppResult<Self> {
        let mut json: Value = serde_json::from_slice(&body)
            .map_err(|e| AppError::bad_request("invalid_json", format!("The request body is not valid JSON ({e}).")))?;
        let Value::Object(fields) = &mut json else {
            return Err(AppError::bad_request("invalid_json", "The request body must be a JSON object."));
        };
        let model = match fields.get("model") {
            Some(Value::String(m)) if !m.is_empty() && m.len() <= MAX_MODEL_ID_LEN => m.clone(),
            _ => {
                return Err(AppError::bad_request(
                    "invalid_request",
                    "The request's `model` must be a model name, as text.",
                ));
            }
        };
        if !fields.get("messages").is_some_and(Value::is_array) {
            return Err(AppError::bad_request("invalid_request", "The request needs `messages`, a list of messages."));
        }
        let body = if api == LlmApi::OpenAi && streams_without_usage(fields) {
            ask_for_usage(fields);
            Bytes::from(json.to_string())
        } else {
            body
        };
        Ok(Self { model, body })
    }
}

fn streams_without_usage(fields: &Map<String, Value>) -> bool {
    let streams = fields.get("stream").and_then(Value::as_bool) == Some(true);
    let asks = fields.get("stream_options").and_then(|o| o.get("include_usage")).and_then(Value::as_bool) == Some(true);
    streams && !asks
}

/// OpenAI streams report usage only when asked to; the proxy always asks, so every call is metered.
fn ask_for_usage(fields: &mut Map<String, Value>) {
    let options = fields.entry("stream_options").or_insert_with(|| Value::Object(Map::new()));
    if !options.is_object() {
        *options = Value::Object(Map::new());
    }
    options["include_usage"] = Value::Bool(true);
}

impl ModelRequest {
    /// The same call for another model (the one the user chose for their own key); the rest of
    /// the body is kept as the agent sent it.
    pub fn with_model(self, model: &str) -> AppResult<Self> {
        if self.model == model {
            return Ok(self);
        }
        let mut json: Value = serde_json::from_slice(&self.body)
            .map_err(|_| AppError::bad_request("invalid_json", "The request body is not valid JSON."))?;
        json["model"] = Value::String(model.to_owned());
        Ok(Self { model: model.to_owned(), body: Bytes::from(json.to_string()) })
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn parse(api: LlmApi, body: &Value) -> AppResult<ModelRequest> {
        ModelRequest::parse(api, Bytes::from(body.to_string()))
    }

    #[test]
    fn openai_streams_always_ask_for_usage() {
        let asked =
            |body: &Value| -> Value { serde_json::from_slice(&parse(LlmApi::OpenAi, body).unwrap().body).unwrap() };
        let base = json!({"model": "m", "messages": [], "stream": true});
        assert_eq!(asked(&base)["stream_options"], json!({"include_usage": true}));
        let mut opted_out = base.clone();
        opted_out["stream_options"] = json!({"include_usage": false, "other": 1});
        assert_eq!(asked(&opted_out)["stream_options"], json!({"include_usage": true, "other": 1}));
        let mut odd = base.clone();
        odd["stream_options"] = json!("nonsense");
        assert_eq!(asked(&odd)["stream_options"], json!({"include_usage": true}));
    }

    #[test]
    fn other_bodies_are_forwarded_byte_for_byte() {
        for (api, raw) in [
            (LlmApi::OpenAi, r#"{"model":"m","messages":[], "temperature": 0.70}"#),
            (LlmApi::OpenAi, r#"{"model":"m","messages":[],"stream":true,"stream_options":{"include_usage":true}}"#),
            (LlmApi::Anthropic, r#"{"model":"m","messages":[],"stream":true}"#),
        ] {
            let parsed = ModelRequest::parse(api, Bytes::from(raw)).unwrap();
            assert_eq!(parsed.body, raw.as_bytes());
            assert_eq!(parsed.model, "m");
        }
    }

    #[test]
    fn another_model_replaces_only_the_model() {
        let parsed = parse(LlmApi::Anthropic, &json!({"model": "m", "messages": [], "max_tokens": 9})).unwrap();
        let mine = parsed.with_model("claude-own").unwrap();
        assert_eq!(mine.model, "claude-own");
        let sent: Value = serde_json::from_slice(&mine.body).unwrap();
        assert_eq!(sent, json!({"model": "claude-own", "messages": [], "max_tokens": 9}));
    }

    #[test]
    fn bodies_without_a_model_or_messages_are_refused() {
        let refused =
            |raw: &str| ModelRequest::parse(LlmApi::OpenAi, Bytes::from(raw.to_owned())).err().map(|e| e.code());
        assert_eq!(refused("not json"), Some("invalid_json"));
        assert_eq!(refused("[1]"), Some("invalid_json"));
        assert_eq!(refused(r#"{"messages":[]}"#), Some("invalid_request"));
        assert_eq!(refused(r#"{"model":7,"messages":[]}"#), Some("invalid_request"));
        assert_eq!(refused(r#"{"model":"","messages":[]}"#), Some("invalid_request"));
        let long = format!(r#"{{"model":"{}","messages":[]}}"#, "m".repeat(300));
        assert_eq!(refused(&long), Some("invalid_request"));
        assert_eq!(refused(r#"{"model":"m"}"#), Some("invalid_request"));
        assert_eq!(refused(r#"{"model":"m","messages":{}}"#), Some("invalid_request"));
    }
}
