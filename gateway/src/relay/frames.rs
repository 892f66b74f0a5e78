//! Reading and rewriting frames cheaply. OpenClaw serialises `type` and `id` first, so the
//! common cases are prefix checks; anything else falls back to a full JSON parse.

use serde_json::{Value, json};

/// Methods a browser may call. Never `config.*`, `devices.*` or anything platform-owned.
pub const ALLOWED_METHODS: &[&str] = &[
    "chat.send",
    "chat.abort",
    "chat.history",
    "chat.inject",
    "sessions.list",
    "sessions.subscribe",
    "sessions.messages.subscribe",
    "sessions.reset",
    "sessions.delete",
    "sessions.patch",
    "health",
];

/// Agent events a browser has no use for; Roost keeps its own heartbeat.
const DROPPED_EVENTS: &[&str] = &["tick"];
/// Events relayed without a sequence number (state snapshots, not history).
const UNSEQUENCED_EVENTS: &[&str] = &["presence", "health", "heartbeat"];

#[derive(Debug, PartialEq, Eq)]
pub enum FromAgent<'a> {
    /// An event to number, buffer for resume and relay.
    Sequenced,
    Unsequenced,
    Dropped,
    /// A response; `id` is the rewritten request id.
    Response {
        id: &'a str,
    },
    Other,
}

pub fn classify(text: &str) -> FromAgent<'_> {
    if let Some(rest) = text.strip_prefix(r#"{"type":"event","event":""#) {
        let name = rest.split('"').next().unwrap_or_default();
        return classify_event(name);
    }
    if let Some(rest) = text.strip_prefix(r#"{"type":"res","id":""#)
        && let Some(end) = rest.find('"')
        && !rest[..end].contains('\\')
    {
        return FromAgent::Response { id: &rest[..end] };
    }
    classify_slow(text)
}

fn classify_event(name: &str) -> FromAgent<'static> {
    if DROPPED_EVENTS.contains(&name) {
        FromAgent::Dropped
    } else if UNSEQUENCED_EVENTS.contains(&name) {
        FromAgent::Unsequenced
    } else {
        FromAgent::Sequenced
    }
}

fn classify_slow(text: &str) -> FromAgent<'_> {
    #[derive(serde::Deserialize)]
    struct Peek<'a> {
        #[serde(rename = "type", borrow)]
        kind: Option<&'a str>,
        event: Option<&'a str>,
        id: Option<&'a str>,
    }
    match serde_json::from_str::<Peek>(text) {
        Ok(Peek { kind: Some("event"), event, .. }) => classify_event(event.unwrap_or_default()),
        Ok(Peek { kind: Some("res"), id: Some(id), .. }) => FromAgent::Response { id },
        _ => FromAgent::Other,
    }
}

pub const NO_MODEL_MESSAGE: &str = "No model is configured on this Roost server, so your agent cannot answer yet. \
The operator must set ROOST_LLM_OPENAI_BASE_URL + ROOST_LLM_OPENAI_API_KEY, or ROOST_LLM_ANTHROPIC_API_KEY.";

/// Why a chat run failed, when Roost knows better than the agent: the agent itself only says
/// "request failed" (it never shows provider text).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunFailure {
    /// The server has no model: the reason for every failure.
    NoModel,
    /// The run's model call was refused for credits (or the user's budget): the reason.
    Refused(&'static str),
}

impl RunFailure {
    fn kind(self) -> &'static str {
        match self {
            Self::NoModel => "no_model_configured",
            Self::Refused(_) => "out_of_credits",
        }
    }

    fn message(self) -> &'static str {
        match self {
            Self::NoModel => NO_MODEL_MESSAGE,
            Self::Refused(reason) => reason,
        }
    }
}

/// A failed chat run's event with Roost's reason in place of the agent's.
pub fn explain_failed_run(text: &str, why: RunFailure) -> Option<String> {
    if !text.contains(r#""state":"error""#) {
        return None;
    }
    let mut frame: Value = serde_json::from_str(text).ok()?;
    if frame["event"] != "chat" || frame["payload"]["state"] != "error" {
        return None;
    }
    frame["payload"]["errorMessage"] = Value::from(why.message());
    frame["payload"]["errorKind"] = Value::from(why.kind());
    Some(frame.to_string())
}

/// `{"roostSeq":N,` + the rest of the object.
pub fn with_seq(text: &str, seq: u64) -> Option<String> {
    let body = text.strip_prefix('{')?;
    let mut out = String::with_capacity(text.len() + 24);
    out.push_str("{\"roostSeq\":");
    out.push_str(&seq.to_string());
    if !body.trim_start().starts_with('}') {
        out.push(',');
    }
    out.push_str(body);
    Some(out)
}

/// Puts the browser's own request id back into a response.
pub fn with_id(text: &str, routed_id: &str, original_id: &str) -> String {
    let prefix = format!(r#"{{"type":"res","id":"{routed_id}""#);
    if let Some(rest) = text.strip_prefix(&prefix) {
        return format!(r#"{{"type":"res","id":{}{rest}"#, Value::from(original_id));
    }
    match serde_json::from_str::<Value>(text) {
        Ok(mut v) => {
            v["id"] = Value::from(original_id);
            v.to_string()
        }
        Err(_) => text.to_string(),
    }
}

/// Routed request ids: `s<socket>:<browser id>`, or `rpc:<n>` for Roost's own calls.
pub fn socket_route(socket: u64, id: &str) -> String {
    format!("s{socket}:{id}")
}

pub enum Route<'a> {
    Socket(u64, &'a str),
    Rpc(&'a str),
    Unknown,
}

pub fn parse_route(id: &str) -> Route<'_> {
    if id.starts_with("rpc:") {
        return Route::Rpc(id);
    }
    id.strip_prefix('s')
        .and_then(|rest| rest.split_once(':'))
        .and_then(|(n, original)| Some(Route::Socket(n.parse().ok()?, original)))
        .unwrap_or(Route::Unknown)
}

/// A chat event of one run: `{"type":"event","event":"chat","payload":{"runId","state","sessionKey"}}`.
pub struct ChatRun<'a> {
    pub run_id: &'a str,
    pub state: &'a str,
    pub session_key: Option<&'a str>,
}

impl ChatRun<'_> {
    /// The run's last event: it finished, failed or was stopped.
    pub fn ended(&self) -> bool {
        matches!(self.state, "final" | "error" | "aborted")
    }
}

/// The run a chat event belongs to. Other frames (and echoed benchmark frames, which name no
/// run) cost a substring search, not a parse.
pub fn chat_run(text: &str) -> Option<ChatRun<'_>> {
    #[derive(serde::Deserialize)]
    struct Event<'a> {
        #[serde(borrow)]
        event: &'a str,
        #[serde(borrow)]
        payload: Payload<'a>,
    }
    #[derive(serde::Deserialize)]
    struct Payload<'a> {
        #[serde(rename = "runId", borrow)]
        run_id: &'a str,
        #[serde(borrow)]
        state: &'a str,
        #[serde(rename = "sessionKey", borrow, default)]
        session_key: Option<&'a str>,
    }
    // Every relayed event passes here: a SIMD search, not `str::contains`, which costs tens of
    // microseconds on a 64 KiB frame.
    static RUN_ID: std::sync::LazyLock<memchr::memmem::Finder<'static>> =
        std::sync::LazyLock::new(|| memchr::memmem::Finder::new(br#""runId""#));
    RUN_ID.find(text.as_bytes())?;
    let event: Event = serde_json::from_str(text).ok()?;
    (event.event == "chat").then_some(ChatRun {
        run_id: event.payload.run_id,
        state: event.payload.state,
        session_key: event.payload.session_key,
    })
}

/// Roost's own heartbeat to the page, sent with every WebSocket ping: browsers do not show
/// pings to scripts, so a page that stops hearing these knows its link is dead.
pub const TICK: &str = r#"{"type":"event","event":"roost.tick","payload":{}}"#;

/// The most of a user's message that goes to their other tabs (as much as the history cache keeps).
const MAX_MESSAGE_IN_EVENT: usize = crate::chat::history::MAX_MESSAGE_BYTES;

/// A user's own message, for their other sockets (the agent does not echo it). `None` for a
/// `chat.send` without a text message or an idempotency key: there is nothing to show or match.
/// Only chat sends the agent accepted pay for this parse.
pub fn user_message_event(text: &str, now_secs: i64) -> Option<String> {
    let frame: Value = serde_json::from_str(text).ok()?;
    let params = &frame["params"];
    let (key, idem, message) =
        (params["sessionKey"].as_str()?, params["idempotencyKey"].as_str()?, params["message"].as_str()?);
    // Kept for resume, so a 4 MiB message must not take the replay buffer's whole budget; the
    // other tab gets the start, as the history cache keeps it.
    let mut cut = message.len().min(MAX_MESSAGE_IN_EVENT);
    while !message.is_char_boundary(cut) {
        cut -= 1;
    }
    let mut payload = json!({ "sessionKey": key, "idempotencyKey": idem, "message": &message[..cut], "ts": now_secs });
    if cut < message.len() {
        payload["truncated"] = Value::from(true);
    }
    Some(roost_event("roost.message", payload))
}

/// Whether a response says `ok:true` (read only for answers to chat sends).
pub fn is_ok_response(text: &str) -> bool {
    #[derive(serde::Deserialize)]
    struct Peek {
        #[serde(default)]
        ok: bool,
    }
    serde_json::from_str::<Peek>(text).is_ok_and(|p| p.ok)
}

/// The `errorMessage` of a failed run's last event (only those pay for the parse).
pub fn error_message(text: &str) -> Option<String> {
    let frame: Value = serde_json::from_str(text).ok()?;
    frame["payload"]["errorMessage"].as_str().map(|m| m.chars().take(1000).collect())
}

pub use super::browser_request::{BrowserRequest, Rejected, parse_browser_request};

pub fn error_response(id: &str, code: &str, message: &str) -> String {
    json!({ "type": "res", "id": id, "ok": false, "error": { "code": code, "message": message } }).to_string()
}

pub fn roost_event(name: &str, payload: Value) -> String {
    json!({ "type": "event", "event": name, "payload": payload }).to_string()
}

/// A close from the agent, as the browser should see it: a code it may send and a clear reason.
pub fn browser_close(upstream_code: Option<u16>) -> (u16, &'static str) {
    match upstream_code {
        Some(1000 | 1001) => (1001, "the agent closed the connection; reconnect to resume"),
        Some(1013) => (1013, "the agent is restarting; reconnect to resume"),
        Some(4001) => (1012, "the agent's configuration changed; reconnect to resume"),
        Some(1008) => (1011, "the agent refused the connection"),
        Some(1009) => (1009, "a message was too large for the agent"),
        _ => (1011, "the connection to the agent was lost; reconnect to resume"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_by_prefix_and_by_parse() {
        assert_eq!(classify(r#"{"type":"event","event":"chat","payload":{}}"#), FromAgent::Sequenced);
        assert_eq!(classify(r#"{"type":"event","event":"tick","payload":{}}"#), FromAgent::Dropped);
        assert_eq!(classify(r#"{"type":"event","event":"presence"}"#), FromAgent::Unsequenced);
        assert_eq!(classify(r#"{"type":"res","id":"s1:a","ok":true}"#), FromAgent::Response { id: "s1:a" });
        assert_eq!(classify(r#"{"ok":true,"id":"s2:b","type":"res"}"#), FromAgent::Response { id: "s2:b" });
        assert_eq!(classify(r#"{"event":"chat","type":"event"}"#), FromAgent::Sequenced);
        assert_eq!(classify("not json"), FromAgent::Other);
    }

    #[test]
    fn seq_is_injected_into_the_object() {
        let out = with_seq(r#"{"type":"event","event":"chat"}"#, 7).unwrap();
        let v: Value = serde_json::from_str(&out).unwrap();
        assert_eq!(v["roostSeq"], 7);
        assert_eq!(v["event"], "chat");
        assert_eq!(with_seq("{}", 1).unwrap(), r#"{"roostSeq":1}"#);
    }

    #[test]
    fn response_ids_are_restored() {
        let out = with_id(r#"{"type":"res","id":"s3:abc","ok":true}"#, "s3:abc", "abc");
        assert_eq!(out, r#"{"type":"res","id":"abc","ok":true}"#);
        let out = with_id(r#"{"ok":true,"id":"s3:abc","type":"res"}"#, "s3:abc", "abc");
        assert_eq!(serde_json::from_str::<Value>(&out).unwrap()["id"], "abc");
        assert!(matches!(parse_route("s3:abc:def"), Route::Socket(3, "abc:def")));
        assert!(matches!(parse_route("rpc:9"), Route::Rpc("rpc:9")));
        assert!(matches!(parse_route("x"), Route::Unknown));
    }

    #[test]
    fn a_users_message_for_other_tabs_is_bounded_and_needs_a_text_and_a_key() {
        let frame = |message: &str| {
            json!({"type":"req","id":"1","method":"chat.send","params":{"sessionKey":"main","message":message,"idempotencyKey":"k"}})
                .to_string()
        };
        let event: Value = serde_json::from_str(&user_message_event(&frame("hi"), 7).unwrap()).unwrap();
        assert_eq!(event["payload"], json!({"sessionKey":"main","idempotencyKey":"k","message":"hi","ts":7}));
        let long: Value = serde_json::from_str(&user_message_event(&frame(&"é".repeat(40_000)), 7).unwrap()).unwrap();
        assert!(long["payload"]["message"].as_str().unwrap().len() <= MAX_MESSAGE_IN_EVENT);
        assert_eq!(long["payload"]["truncated"], true);
        let no_key = r#"{"type":"req","id":"1","method":"chat.send","params":{"sessionKey":"main","message":"x"}}"#;
        assert!(user_message_event(no_key, 7).is_none());
        assert!(user_message_event("not json", 7).is_none());
    }

    #[test]
    fn close_codes_are_mapped_to_sendable_codes() {
        for code in [None, Some(1000), Some(1005), Some(1006), Some(1008), Some(1013), Some(4001), Some(4999)] {
            let (mapped, reason) = browser_close(code);
            assert!(!matches!(mapped, 1005 | 1006 | 1015), "{code:?} -> {mapped}");
            assert!(reason.len() <= 123);
        }
    }
}
