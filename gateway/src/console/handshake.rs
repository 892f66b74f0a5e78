//! The Control UI's `connect`, answered for by Roost (openclaw-protocol §2.2): the browser holds
//! no token, so Roost sets `auth` to the internal token and signs the device proof with its own
//! identity over the challenge it relayed. That device is paired silently because Roost reaches
//! the agent as a loopback client (§3), exactly as the chat relay does.

use serde_json::{Value, json};

use crate::openclaw::{DeviceIdentity, PROTOCOL};

/// The platform Roost's device was paired with (the pairing record pins it).
const PLATFORM: &str = "linux";

/// The challenge the agent sent on this connection.
pub struct Challenge {
    pub nonce: String,
    pub ts: i64,
}

impl Challenge {
    pub fn from_event(frame: &Value) -> Option<Self> {
        if frame["type"] != "event" || frame["event"] != "connect.challenge" {
            return None;
        }
        let nonce = frame["payload"]["nonce"].as_str().filter(|n| !n.is_empty())?.to_string();
        Some(Self { nonce, ts: frame["payload"]["ts"].as_i64()? })
    }
}

/// The browser's `connect` with Roost's credentials in place of the browser's (whatever it sent
/// in `auth` and `device` is dropped), or why it cannot be sent.
pub fn rewrite_connect(
    frame: &Value,
    token: &str,
    device: &DeviceIdentity,
    challenge: &Challenge,
) -> Result<Value, &'static str> {
    if frame["type"] != "req" || frame["method"] != "connect" || !frame["id"].is_string() {
        return Err("the first request must be connect");
    }
    let mut params = frame["params"].clone();
    let Some(fields) = params.as_object_mut() else { return Err("connect params must be an object") };
    let role = fields.get("role").and_then(Value::as_str).unwrap_or("operator");
    if role != "operator" {
        return Err("the agent console connects as an operator");
    }
    let scopes: Vec<&str> = match fields.get("scopes") {
        None => Vec::new(),
        Some(Value::Array(list)) => {
            list.iter().map(|s| s.as_str().ok_or("scopes must be strings")).collect::<Result<_, _>>()?
        }
        Some(_) => return Err("scopes must be a list"),
    };
    let scopes = scopes.join(",");
    let Some(client) = fields.get_mut("client").and_then(Value::as_object_mut) else {
        return Err("client is required");
    };
    let (Some(id), Some(mode)) = (
        client.get("id").and_then(Value::as_str).map(str::to_string),
        client.get("mode").and_then(Value::as_str).map(str::to_string),
    ) else {
        return Err("client.id and client.mode are required");
    };
    client.insert("platform".into(), json!(PLATFORM));
    client.remove("deviceFamily");
    let proof = format!(
        "v3|{}|{id}|{mode}|operator|{scopes}|{}|{token}|{}|{PLATFORM}|",
        device.id(),
        challenge.ts,
        challenge.nonce
    );
    fields.insert("role".into(), json!("operator"));
    fields.insert("minProtocol".into(), json!(PROTOCOL));
    fields.insert("maxProtocol".into(), json!(PROTOCOL));
    fields.insert("auth".into(), json!({ "token": token }));
    fields.insert(
        "device".into(),
        json!({
            "id": device.id(), "publicKey": device.public_key(), "signature": device.sign(&proof),
            "signedAt": challenge.ts, "nonce": challenge.nonce,
        }),
    );
    Ok(json!({ "type": "req", "id": frame["id"], "method": "connect", "params": params }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn browser_credentials_are_replaced_and_the_rest_kept() {
        let dir = tempfile::tempdir().unwrap();
        let device = DeviceIdentity::load_or_create(dir.path()).unwrap();
        let browser = json!({ "type": "req", "id": "c1", "method": "connect", "params": {
            "minProtocol": 4, "maxProtocol": 4, "role": "operator", "scopes": ["operator.read", "operator.admin"],
            "client": { "id": "openclaw-control-ui", "version": "x", "platform": "MacIntel", "deviceFamily": "desktop", "mode": "webchat" },
            "auth": { "token": "pasted", "deviceToken": "stored" },
            "device": { "id": "browser-device", "publicKey": "k", "signature": "s", "signedAt": 1, "nonce": "n" },
            "caps": ["tool-events"], "locale": "en" } });
        let challenge = Challenge { nonce: "nonce-1".into(), ts: 1_795_372_536_438 };
        let out = rewrite_connect(&browser, "internal", &device, &challenge).unwrap();
        let p = &out["params"];
        assert_eq!(p["auth"], json!({ "token": "internal" }));
        assert_eq!(p["device"]["id"], device.id());
        assert_eq!(p["device"]["nonce"], "nonce-1");
        assert_eq!(p["client"]["platform"], "linux");
        assert!(p["client"].get("deviceFamily").is_none());
        assert_eq!(p["caps"], json!(["tool-events"]));
        assert_eq!(p["scopes"], json!(["operator.read", "operator.admin"]));
        let node = json!({ "type": "req", "id": "c", "method": "connect", "params": { "role": "node", "client": {} } });
        assert!(rewrite_connect(&node, "t", &device, &challenge).is_err());
        assert!(
            rewrite_connect(&json!({ "type": "req", "id": "c", "method": "health" }), "t", &device, &challenge)
                .is_err()
        );
    }
}
