//! What the console's frames may carry: config writes that leave Roost's keys alone
//! (`provisioner::PLATFORM_OWNED`), and answers from the agent with every credential taken out.

use serde_json::{Map, Value, json};

/// Config methods that write: `config.patch` merges a partial, `config.set`/`config.apply`
/// replace the whole file.
const WRITES: &[&str] = &["config.patch", "config.set", "config.apply"];
/// Fields OpenClaw hands out as credentials; never passed to the browser, wherever they are.
const CREDENTIAL_FIELDS: &[&str] = &["deviceToken", "bootstrapToken"];
pub const REDACTED: &str = "[kept by Roost]";

/// The agent's config as the console last read it (`config.get`): what a write is compared with.
#[derive(Default)]
pub struct Snapshot {
    /// `payload.config` and `payload.parsed`: a key counts as unchanged if it equals either.
    views: Vec<Value>,
}

impl Snapshot {
    pub fn from_get_payload(payload: &Value) -> Self {
        let views = ["config", "parsed"].iter().filter_map(|k| payload.get(*k)).filter(|v| v.is_object()).cloned();
        Self { views: views.collect() }
    }

    fn unchanged(&self, path: &[&str], after: Option<&Value>) -> bool {
        self.views.iter().any(|view| at(view, path) == after)
    }

    fn is_empty(&self) -> bool {
        self.views.is_empty()
    }
}

/// `Err(message)` when a config write from the console would change a platform-owned key.
pub fn check_write(method: &str, params: &Value, snapshot: &Snapshot) -> Result<(), String> {
    if !WRITES.contains(&method) {
        return Ok(());
    }
    let Some(raw) = params.get("raw").and_then(Value::as_str) else {
        return Ok(()); // OpenClaw refuses it itself: nothing is written.
    };
    let Ok(written) = serde_json::from_str::<Value>(raw) else {
        return Err("Roost could not read this change to check it against the settings it manages. \
                    Write it as plain JSON (no comments) and try again."
            .into());
    };
    let mut touched: Vec<(String, &str)> = Vec::new();
    for (path, why) in provisioner::PLATFORM_OWNED {
        let after = if method == "config.patch" {
            patched(snapshot, &written, path)
        } else {
            Some(at(&written, path).cloned())
        };
        let Some(after) = after else { continue };
        if snapshot.is_empty() || !snapshot.unchanged(path, after.as_ref()) {
            touched.push((path.join("."), why));
        }
    }
    if touched.is_empty() {
        return Ok(());
    }
    let list: Vec<String> = touched.iter().map(|(path, why)| format!("{path} ({why})")).collect();
    Err(format!(
        "Roost manages {}. Your change was not saved; the rest of your agent's settings are yours to change.",
        list.join("; ")
    ))
}

/// What `path` holds after the merge patch `patch`, if the patch reaches it at all.
fn patched(snapshot: &Snapshot, patch: &Value, path: &[&str]) -> Option<Option<Value>> {
    let mut at_patch = patch;
    for (depth, key) in path.iter().enumerate() {
        match at_patch {
            Value::Object(map) => match map.get(*key) {
                Some(next) => at_patch = next,
                None => return None,
            },
            // A null or a value above the path deletes or replaces everything under it.
            _ if depth > 0 => return Some(None),
            _ => return None,
        }
    }
    let before = snapshot.views.first().and_then(|view| at(view, path)).cloned();
    Some(merge_patch(before, at_patch))
}

/// RFC 7386: objects merge, `null` deletes, anything else replaces.
fn merge_patch(target: Option<Value>, patch: &Value) -> Option<Value> {
    match patch {
        Value::Null => None,
        Value::Object(patch) => {
            let mut target = match target {
                Some(Value::Object(map)) => map,
                _ => Map::new(),
            };
            for (key, value) in patch {
                match merge_patch(target.remove(key), value) {
                    Some(merged) => {
                        target.insert(key.clone(), merged);
                    }
                    None => {
                        target.remove(key);
                    }
                }
            }
            Some(Value::Object(target))
        }
        other => Some(other.clone()),
    }
}

fn at<'a>(value: &'a Value, path: &[&str]) -> Option<&'a Value> {
    path.iter().try_fold(value, |v, key| v.get(*key))
}

/// The secrets one console connection must never show the browser, found verbatim anywhere.
pub struct Secrets {
    known: Vec<String>,
}

impl Secrets {
    pub fn new(known: impl IntoIterator<Item = String>) -> Self {
        Self { known: known.into_iter().filter(|s| s.len() >= 16).collect() }
    }

    /// One frame from the agent, as the browser may see it: credential fields dropped (and
    /// remembered, so a copy elsewhere is caught too), known secrets replaced.
    pub fn scrub(&mut self, frame: &str) -> String {
        let mut out =
            if CREDENTIAL_FIELDS.iter().any(|f| memchr::memmem::find(frame.as_bytes(), f.as_bytes()).is_some()) {
                match serde_json::from_str::<Value>(frame) {
                    Ok(mut value) => {
                        self.drop_credentials(&mut value);
                        value.to_string()
                    }
                    Err(_) => frame.to_string(),
                }
            } else {
                frame.to_string()
            };
        for secret in &self.known {
            if memchr::memmem::find(out.as_bytes(), secret.as_bytes()).is_some() {
                out = out.replace(secret.as_str(), REDACTED);
            }
        }
        out
    }

    fn drop_credentials(&mut self, value: &mut Value) {
        match value {
            Value::Object(map) => {
                for field in CREDENTIAL_FIELDS {
                    if let Some(Value::String(secret)) = map.remove(*field)
                        && secret.len() >= 16
                        && !self.known.contains(&secret)
                        && self.known.len() < 64
                    {
                        self.known.push(secret);
                    }
                }
                map.values_mut().for_each(|v| self.drop_credentials(v));
            }
            Value::Array(items) => items.iter_mut().for_each(|v| self.drop_credentials(v)),
            _ => {}
        }
    }
}

/// The answer the console shows for a refused write.
pub fn refusal(id: &Value, message: &str) -> String {
    json!({
        "type": "res", "id": id, "ok": false,
        "error": { "code": "FORBIDDEN", "message": message, "details": { "code": "ROOST_PLATFORM_OWNED" } },
    })
    .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn snapshot() -> Snapshot {
        Snapshot::from_get_payload(&json!({ "config": {
            "gateway": { "mode": "local", "bind": "loopback", "port": 18789, "auth": { "mode": "token" },
                         "controlUi": { "enabled": true, "basePath": "/agent" } },
            "agents": { "defaults": { "model": { "primary": "roost/m1" }, "skipBootstrap": true } },
            "ui": { "assistant": { "name": "Claw" } }
        }}))
    }

    fn patch(raw: Value) -> Result<(), String> {
        check_write("config.patch", &json!({ "raw": raw.to_string(), "baseHash": "h" }), &snapshot())
    }

    #[test]
    fn user_keys_pass_and_platform_keys_are_refused() {
        assert!(patch(json!({ "ui": { "assistant": { "name": "Pip" } } })).is_ok());
        assert!(patch(json!({ "agents": { "defaults": { "skipBootstrap": false } } })).is_ok());
        assert!(patch(json!({ "gateway": { "controlUi": { "basePath": "/agent" } } })).is_ok(), "a no-op");
        let refused = patch(json!({ "gateway": { "controlUi": { "basePath": "/x" } } })).unwrap_err();
        assert!(refused.contains("gateway.controlUi.basePath"), "{refused}");
        assert!(patch(json!({ "gateway": null })).unwrap_err().contains("gateway.auth"));
        assert!(patch(json!({ "gateway": { "trustedProxies": ["10.0.0.0/8"] } })).is_err());
        assert!(patch(json!({ "models": { "providers": { "roost": { "apiKey": "mine" } } } })).is_err());
        assert!(patch(json!({ "channels": { "telegram": { "enabled": false } } })).is_err());
        assert!(patch(json!({ "channels": { "slack": { "enabled": true } } })).is_ok());
    }

    #[test]
    fn a_whole_file_write_may_keep_but_not_change_platform_keys() {
        let mut whole = snapshot().views[0].clone();
        whole["ui"]["assistant"]["name"] = json!("Pip");
        let set = |v: &Value| check_write("config.set", &json!({ "raw": v.to_string() }), &snapshot());
        assert!(set(&whole).is_ok());
        whole["gateway"]["auth"] = json!({ "mode": "none" });
        assert!(set(&whole).unwrap_err().contains("gateway.auth"));
        let unread = check_write("config.apply", &json!({ "raw": "{}" }), &Snapshot::default());
        assert!(unread.is_err(), "without a read config nothing can be shown unchanged");
        assert!(check_write("config.patch", &json!({ "raw": "{ // json5\n}" }), &snapshot()).is_err());
        assert!(check_write("config.get", &json!({}), &Snapshot::default()).is_ok());
    }

    #[test]
    fn credentials_are_dropped_and_known_secrets_replaced_everywhere() {
        let token = "gw-token-0123456789abcdef";
        let mut secrets = Secrets::new([token.to_string()]);
        let hello = json!({ "type": "res", "id": "c", "ok": true, "payload": { "type": "hello-ok",
            "auth": { "deviceToken": "dev-token-0123456789abcdef", "scopes": ["operator.read"] } } });
        let out = secrets.scrub(&hello.to_string());
        assert!(!out.contains("dev-token"), "{out}");
        assert!(out.contains("operator.read"));
        let later = format!(
            r#"{{"type":"event","event":"log","payload":{{"line":"{token} and dev-token-0123456789abcdef"}}}}"#
        );
        let out = secrets.scrub(&later);
        assert!(!out.contains(token) && !out.contains("dev-token"), "{out}");
        assert_eq!(secrets.scrub(r#"{"type":"event","event":"tick"}"#), r#"{"type":"event","event":"tick"}"#);
    }
}
