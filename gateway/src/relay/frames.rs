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

/// A failed chat run, explained: on a server with no model, that is the reason for every failure,
/// and the agent itself only says "request failed" (it never shows provider text).
pub fn explain_missing_model(text: &str) -> Option<String> {
    if !text.contains(r#""state":"error""#) {
        return None;
    }
    let mut frame: Value = serde_json::from_str(text).ok()?;
    if frame["event"] != "chat" || frame["payload"]["state"] != "error" {
        return None;
    }
    frame["payload"]["errorMessage"] = Value::from(NO_MODEL_MESSAGE);
    frame["payload"]["errorKind"] = Value::from("no_model_configured");
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
    if !text.contains(r#""runId""#) {
        return None;
    }
    let event: Event = serde_json::from_str(text).ok()?;
    (event.event == "chat").then_some(ChatRun {
        run_id: event.payload.run_id,
        state: event.payload.state,
        session_key: event.payload.session_key,
    })
}

/// A request from the browser, checked: an object with `type:"req"`, a short id and a method.
pub struct BrowserRequest<'a> {
    text: &'a str,
    pub id: String,
    pub method: String,
    /// `params.sessionKey`, when the request names a chat.
    pub session_key: Option<String>,
    /// The parsed frame, when it is not in the usual `{"type":"req","id":"…",…}` shape.
    frame: Option<Value>,
}

impl BrowserRequest<'_> {
    /// The frame as it goes upstream, with the id routed back to this socket (`s<socket>:<id>`).
    /// A frame in the usual shape keeps its bytes (only the id is spliced in); any other is
    /// re-serialised.
    pub fn routed(self, socket: u64) -> String {
        let route = socket_route(socket, &self.id);
        match self.frame {
            None => {
                let rest = &self.text[REQ_PREFIX.len() + self.id.len() + 1..];
                let mut out = String::with_capacity(self.text.len() + route.len() - self.id.len());
                out.push_str(REQ_PREFIX);
                out.push_str(&route);
                out.push('"');
                out.push_str(rest);
                out
            }
            Some(mut frame) => {
                frame["id"] = route.into();
                frame.to_string()
            }
        }
    }
}

pub enum Rejected {
    /// Not a request we can answer (no usable id).
    Malformed(String),
    /// A request we answer ourselves with an error.
    Refused { id: String, code: &'static str, message: String },
}

/// How browsers (`web/assets/socket.js`) serialise requests: `type`, then `id`.
const REQ_PREFIX: &str = r#"{"type":"req","id":""#;

/// Checks a browser frame. The usual case is checked with one borrowing pass and no copy of
/// the frame; anything unusual (other key order, escapes, duplicate keys, errors) takes the full
/// parse, which also words the errors.
pub fn parse_browser_request(text: &str) -> Result<BrowserRequest<'_>, Rejected> {
    if let Some(request) = parse_usual(text) {
        return Ok(request);
    }
    let frame: Value =
        serde_json::from_str(text).map_err(|e| Rejected::Malformed(format!("frame is not JSON: {e}")))?;
    let id = frame["id"]
        .as_str()
        .filter(|id| valid_id(id))
        .ok_or_else(|| Rejected::Malformed("a request needs an id of 1-128 characters from [A-Za-z0-9._:-]".into()))?;
    let refuse = |code, message: String| Rejected::Refused { id: id.to_string(), code, message };
    if frame["type"] != "req" {
        return Err(refuse("invalid_request", "only {\"type\":\"req\"} frames may be sent".into()));
    }
    let method = frame["method"].as_str().ok_or_else(|| refuse("invalid_request", "method is missing".into()))?;
    if !ALLOWED_METHODS.contains(&method) {
        return Err(refuse("forbidden", format!("method {method} is not available through Roost")));
    }
    if !(frame["params"].is_object() || frame["params"].is_null()) {
        return Err(refuse("invalid_request", "params must be an object".into()));
    }
    let session_key = frame["params"]["sessionKey"].as_str().map(str::to_string);
    Ok(BrowserRequest { text, id: id.to_string(), method: method.to_string(), session_key, frame: Some(frame) })
}

/// A valid request in the usual shape, or `None` to take the full parse.
fn parse_usual(text: &str) -> Option<BrowserRequest<'_>> {
    #[derive(serde::Deserialize)]
    struct Peek<'a> {
        #[serde(rename = "type", borrow)]
        kind: &'a str,
        #[serde(borrow)]
        id: &'a str,
        #[serde(borrow)]
        method: &'a str,
        #[serde(default, borrow)]
        params: Params<'a>,
    }
    let rest = text.strip_prefix(REQ_PREFIX)?;
    // serde rejects duplicate keys and trailing bytes, so the frame is one well-formed object.
    let peek: Peek = serde_json::from_str(text).ok()?;
    let usual = peek.kind == "req"
        && valid_id(peek.id)
        && rest.strip_prefix(peek.id).is_some_and(|after| after.starts_with('"'))
        && ALLOWED_METHODS.contains(&peek.method);
    usual.then(|| BrowserRequest {
        text,
        id: peek.id.to_string(),
        method: peek.method.to_string(),
        session_key: peek.params.session_key.map(str::to_string),
        frame: None,
    })
}

/// `params` that is an object or null: its `sessionKey` is kept, everything else is skipped
/// without being copied. Keys or a `sessionKey` with escapes fail here and take the full parse.
#[derive(Default)]
struct Params<'a> {
    session_key: Option<&'a str>,
}

impl<'de: 'a, 'a> serde::Deserialize<'de> for Params<'a> {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Shape<'a>(std::marker::PhantomData<&'a ()>);
        impl<'de: 'a, 'a> serde::de::Visitor<'de> for Shape<'a> {
            type Value = Params<'a>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("an object or null")
            }
            fn visit_unit<E>(self) -> Result<Params<'a>, E> {
                Ok(Params::default())
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Params<'a>, A::Error> {
                let mut params = Params::default();
                while let Some(key) = map.next_key::<&'de str>()? {
                    if key == "sessionKey" {
                        params.session_key = Some(map.next_value::<&'de str>()?);
                    } else {
                        map.next_value::<serde::de::IgnoredAny>()?;
                    }
                }
                Ok(params)
            }
        }
        deserializer.deserialize_any(Shape(std::marker::PhantomData))
    }
}

fn valid_id(id: &str) -> bool {
    (1..=128).contains(&id.len())
        && id.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b':' | b'-'))
}

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
    fn the_chat_a_request_names_is_read_on_both_paths() {
        let usual = r#"{"type":"req","id":"1","method":"chat.send","params":{"message":"x","sessionKey":"s-1"}}"#;
        assert_eq!(parse_browser_request(usual).ok().unwrap().session_key.as_deref(), Some("s-1"));
        let unusual = r#"{"id":"1","type":"req","method":"chat.send","params":{"sessionKey":"s-\u0032"}}"#;
        assert_eq!(parse_browser_request(unusual).ok().unwrap().session_key.as_deref(), Some("s-2"));
        let none = r#"{"type":"req","id":"1","method":"chat.history","params":{}}"#;
        assert_eq!(parse_browser_request(none).ok().unwrap().session_key, None);
    }

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
    fn browser_requests_are_checked() {
        assert!(parse_browser_request(r#"{"type":"req","id":"1","method":"chat.send","params":{}}"#).is_ok());
        let forbidden = parse_browser_request(r#"{"type":"req","id":"2","method":"config.patch","params":{}}"#);
        assert!(matches!(forbidden, Err(Rejected::Refused { code: "forbidden", .. })));
        assert!(matches!(
            parse_browser_request(r#"{"type":"req","id":"a\"b","method":"chat.send"}"#),
            Err(Rejected::Malformed(_))
        ));
        assert!(matches!(parse_browser_request("[1,2]"), Err(Rejected::Malformed(_))));
        assert!(matches!(
            parse_browser_request(r#"{"type":"res","id":"1"}"#),
            Err(Rejected::Refused { code: "invalid_request", .. })
        ));
    }

    #[test]
    fn usual_requests_keep_their_bytes_and_get_a_routed_id() {
        let text = r#"{"type":"req","id":"a-1","method":"chat.send","params":{"message":"h\u00e9 \"x\"","n":1.5e300}}"#;
        let request = parse_browser_request(text).ok().unwrap();
        assert!(request.frame.is_none(), "the usual shape takes no full parse");
        assert_eq!(request.method, "chat.send");
        assert_eq!(
            request.routed(7),
            r#"{"type":"req","id":"s7:a-1","method":"chat.send","params":{"message":"h\u00e9 \"x\"","n":1.5e300}}"#
        );
        let no_params = parse_browser_request(r#"{"type":"req","id":"b","method":"health"}"#).ok().unwrap();
        assert!(no_params.frame.is_none());
        assert_eq!(no_params.routed(1), r#"{"type":"req","id":"s1:b","method":"health"}"#);
    }

    #[test]
    fn unusual_requests_are_parsed_fully_and_checked_the_same_way() {
        for (text, routed_id) in [
            (r#"{"id":"x","type":"req","method":"health","params":{}}"#, "s2:x"),
            (r#"{ "type": "req", "id": "x", "method": "health" }"#, "s2:x"),
            (r#"{"type":"req","id":"x","method":"health","params":null}"#, "s2:x"),
        ] {
            let request = parse_browser_request(text).ok().unwrap();
            let v: Value = serde_json::from_str(&request.routed(2)).unwrap();
            assert_eq!(v["id"], routed_id, "{text}");
        }
        let dup = r#"{"type":"req","id":"x","method":"health","method":"config.patch"}"#;
        assert!(
            matches!(parse_browser_request(dup), Err(Rejected::Refused { code: "forbidden", .. })),
            "duplicate keys fall back to the full parse, where the last one counts"
        );
        let params = r#"{"type":"req","id":"x","method":"health","params":[1]}"#;
        assert!(matches!(parse_browser_request(params), Err(Rejected::Refused { code: "invalid_request", .. })));
        let trailing = r#"{"type":"req","id":"x","method":"health"} {"#;
        assert!(matches!(parse_browser_request(trailing), Err(Rejected::Malformed(_))));
        let prefix_id = r#"{"type":"req","id":"xy","method":"health","id":"x"}"#;
        assert!(parse_browser_request(prefix_id).ok().unwrap().frame.is_some());
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
