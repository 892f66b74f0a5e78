//! Requests from the browser: checked (an object with `type:"req"`, a short id, an allowed
//! method, object params) and routed to this socket, in one borrowing pass for the usual shape.

use serde_json::Value;

use super::frames::{ALLOWED_METHODS, socket_route};

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
}
