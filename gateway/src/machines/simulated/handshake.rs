//! The `connect` request: protocol range, client, role and scopes, origin, token and device
//! proof, answered with `hello-ok` or refused the way OpenClaw refuses.

use serde_json::{Value, json};

use super::device_proof::verify_device;
use super::{Shared, TICK_INTERVAL, now_ms};

/// Protocol version spoken (OpenClaw 2026.9.6).
const PROTOCOL_VERSION: u64 = 4;
/// Server version reported in `hello-ok.server.version`.
const SERVER_VERSION: &str = "2026.9.6-simulated";
/// Device token handed out in `hello-ok.auth.deviceToken` when a device proof was given.
const DEVICE_TOKEN: &str = "fake-device-token";
/// Frames larger than this before `hello-ok` are closed with 1009.
pub(super) const PRE_AUTH_MAX_BYTES: usize = 64 * 1024;
/// `hello-ok.policy.maxPayload`.
pub(super) const MAX_PAYLOAD: usize = 26_214_400;
/// `hello-ok.policy.maxBufferedBytes`.
const MAX_BUFFERED_BYTES: usize = 52_428_800;
/// Allowed clock skew for `device.signedAt`.
pub(super) const SIGNATURE_SKEW_MS: i64 = 120_000;

const CLIENT_IDS: &[&str] = &[
    "webchat-ui",
    "openclaw-control-ui",
    "openclaw-browser-copilot",
    "openclaw-tui",
    "webchat",
    "cli",
    "gateway-client",
    "openclaw-macos",
    "openclaw-linux",
    "openclaw-ios",
    "openclaw-watchos",
    "openclaw-android",
    "node-host",
    "openclaw-worker",
    "test",
    "fingerprint",
    "openclaw-probe",
];
const CLIENT_MODES: &[&str] = &["webchat", "cli", "ui", "backend", "node", "worker", "probe", "test"];
const OPERATOR_SCOPES: &[&str] = &[
    "operator.read",
    "operator.write",
    "operator.admin",
    "operator.approvals",
    "operator.questions",
    "operator.pairing",
    "operator.talk",
    "operator.talk.secrets",
];
pub(super) const SCOPE_READ: &str = "operator.read";
pub(super) const SCOPE_WRITE: &str = "operator.write";
const METHODS: &[&str] =
    &["health", "chat.send", "chat.history", "chat.abort", "sessions.list", "sessions.delete", "sessions.reset"];
const EVENTS: &[&str] = &["connect.challenge", "agent", "chat", "tick", "health", "shutdown"];

pub(super) struct Reject {
    pub(super) res: Option<Value>,
    pub(super) close_code: u16,
    pub(super) close_reason: String,
}

pub(super) fn reject(id: &Value, error: Value, close_code: u16, close_reason: &str) -> Reject {
    Reject {
        res: Some(json!({"type": "res", "id": id, "ok": false, "error": error})),
        close_code,
        close_reason: close_reason.to_string(),
    }
}

fn invalid_params(id: &Value, why: &str) -> Reject {
    let msg = format!("invalid connect params: {why}");
    reject(id, json!({"code": "INVALID_REQUEST", "message": msg}), 1008, &msg)
}

pub(super) fn device_error(id: &Value, message: &str, code: &str, reason: &str) -> Reject {
    reject(
        id,
        json!({"code": "INVALID_REQUEST", "message": message, "details": {"code": code, "reason": reason}}),
        1008,
        message,
    )
}

/// The nonce and time of the `connect.challenge` a connection was sent.
pub(super) struct Challenge {
    pub(super) nonce: String,
    pub(super) ts: u64,
}

pub(super) fn str_field<'a>(v: &'a Value, key: &str) -> Option<&'a str> {
    v.get(key).and_then(Value::as_str)
}

/// Returns the hello-ok `res` frame and the granted scopes, or a rejection.
pub(super) fn handle_connect(
    shared: &Shared,
    text: &str,
    challenge: &Challenge,
    index: u64,
    has_origin: bool,
) -> Result<(Value, Vec<String>), Reject> {
    let frame: Value = serde_json::from_str(text).unwrap_or(Value::Null);
    let id = frame.get("id").cloned().unwrap_or(Value::Null);
    let is_req = str_field(&frame, "type") == Some("req");
    let method = str_field(&frame, "method");
    if is_req && let Some(m) = method {
        shared.hooks.request(m, frame.get("params").unwrap_or(&Value::Null));
    }
    if !is_req || method != Some("connect") || !(id.is_string() || id.is_number()) {
        let res = if id.is_null() {
            None
        } else {
            Some(json!({"type": "res", "id": id, "ok": false, "error": {
                "code": "INVALID_REQUEST", "message": "invalid handshake: first request must be connect"}}))
        };
        return Err(Reject { res, close_code: 1008, close_reason: "invalid handshake".to_string() });
    }

    if let Err(refusal) = shared.hooks.admit(index) {
        return Err(reject(&id, refusal.error, refusal.close_code, &refusal.close_reason));
    }

    let Some(params) = frame.get("params").filter(|p| p.is_object()) else {
        return Err(invalid_params(&id, "params must be an object"));
    };

    // Protocol range must include 4.
    let min = params.get("minProtocol").and_then(Value::as_u64);
    let max = params.get("maxProtocol").and_then(Value::as_u64);
    match (min, max) {
        (Some(min), Some(max)) if min <= PROTOCOL_VERSION && PROTOCOL_VERSION <= max => {}
        (Some(_), Some(_)) => {
            return Err(reject(
                &id,
                json!({"code": "INVALID_REQUEST", "message": "protocol mismatch",
                       "details": {"expectedProtocol": PROTOCOL_VERSION, "minProtocol": min, "maxProtocol": max}}),
                1002,
                "protocol mismatch",
            ));
        }
        _ => {
            return Err(invalid_params(&id, "minProtocol and maxProtocol are required"));
        }
    }

    // client
    let Some(client) = params.get("client").filter(|c| c.is_object()) else {
        return Err(invalid_params(&id, "client is required"));
    };
    let mut client_fields = Vec::new();
    for f in ["id", "version", "platform", "mode"] {
        match str_field(client, f) {
            Some(v) => client_fields.push(v),
            None => return Err(invalid_params(&id, &format!("client.{f} is required"))),
        }
    }
    let (client_id, client_mode, platform) = (client_fields[0], client_fields[3], client_fields[2]);
    if !CLIENT_IDS.contains(&client_id) {
        return Err(invalid_params(&id, &format!("client.id must be one of the known client ids (got {client_id:?})")));
    }
    if !CLIENT_MODES.contains(&client_mode) {
        return Err(invalid_params(&id, &format!("client.mode must be one of the known modes (got {client_mode:?})")));
    }
    let device_family = str_field(client, "deviceFamily").unwrap_or("");

    let role = match params.get("role") {
        None => "operator",
        Some(Value::String(r)) if r == "operator" || r == "node" => r.as_str(),
        Some(_) => return Err(invalid_params(&id, "role must be \"operator\" or \"node\"")),
    };
    let scopes: Vec<String> = match params.get("scopes") {
        None => Vec::new(),
        Some(Value::Array(a)) => {
            let mut out = Vec::new();
            for s in a {
                match s.as_str() {
                    Some(s) if OPERATOR_SCOPES.contains(&s) => out.push(s.to_string()),
                    _ => return Err(invalid_params(&id, &format!("unknown scope {s}"))),
                }
            }
            out
        }
        Some(_) => return Err(invalid_params(&id, "scopes must be an array")),
    };

    if has_origin {
        return Err(reject(
            &id,
            json!({"code": "INVALID_REQUEST",
                   "message": "origin not allowed (open the Control UI from the gateway host or allow it in gateway.controlUi.allowedOrigins)",
                   "details": {"code": "CONTROL_UI_ORIGIN_NOT_ALLOWED", "reason": "origin not allowed"}}),
            1008,
            "origin not allowed",
        ));
    }

    // auth
    let auth = params.get("auth").cloned().unwrap_or(Value::Null);
    let token = str_field(&auth, "token").or_else(|| str_field(&auth, "password"));
    let device_token = str_field(&auth, "deviceToken");
    let device = params.get("device").filter(|d| !d.is_null());
    let auth_method = match (token, device_token) {
        (Some(t), _) => {
            let accepted = shared.hooks.token_accepted(t, &shared.token);
            if !accepted {
                return Err(reject(
                    &id,
                    json!({"code": "INVALID_REQUEST",
                           "message": "unauthorized: gateway token mismatch (provide gateway auth token)",
                           "details": {"code": "AUTH_TOKEN_MISMATCH", "authReason": "token_mismatch",
                                       "canRetryWithDeviceToken": false,
                                       "recommendedNextStep": "update_auth_credentials"}}),
                    1008,
                    "unauthorized: gateway token mismatch",
                ));
            }
            "token"
        }
        (None, Some(dt)) => {
            if dt != DEVICE_TOKEN || device.is_none() {
                return Err(reject(
                    &id,
                    json!({"code": "INVALID_REQUEST", "message": "unauthorized: device token mismatch",
                           "details": {"code": "AUTH_DEVICE_TOKEN_MISMATCH", "authReason": "device_token_mismatch",
                                       "canRetryWithDeviceToken": false,
                                       "recommendedNextStep": "update_auth_credentials"}}),
                    1008,
                    "unauthorized: device token mismatch",
                ));
            }
            "device-token"
        }
        (None, None) => {
            return Err(reject(
                &id,
                json!({"code": "INVALID_REQUEST",
                       "message": "unauthorized: gateway token missing (provide gateway auth token)",
                       "details": {"code": "AUTH_TOKEN_MISSING", "authReason": "token_missing",
                                   "canRetryWithDeviceToken": false,
                                   "recommendedNextStep": "update_auth_credentials"}}),
                1008,
                "unauthorized: gateway token missing",
            ));
        }
    };
    let signed_token = token.or(device_token).or_else(|| str_field(&auth, "bootstrapToken")).unwrap_or("");

    // device proof
    match device {
        Some(d) => verify_device(
            &id,
            d,
            challenge,
            client_id,
            client_mode,
            role,
            &scopes,
            signed_token,
            platform,
            device_family,
        )?,
        None => {
            return Err(reject(
                &id,
                json!({"code": "NOT_PAIRED", "message": "device identity required",
                       "details": {"code": "DEVICE_IDENTITY_REQUIRED", "reason": "device-identity-required"}}),
                1008,
                "device identity required",
            ));
        }
    }

    let granted = shared.hooks.grant(scopes);
    let now = now_ms();
    let mut auth_out = json!({"method": auth_method, "role": role, "scopes": granted, "issuedAtMs": now});
    if device.is_some() {
        auth_out["deviceToken"] = json!(DEVICE_TOKEN);
    }
    let payload = json!({
        "type": "hello-ok",
        "protocol": PROTOCOL_VERSION,
        "server": {"version": SERVER_VERSION, "connId": uuid::Uuid::new_v4().to_string()},
        "features": {"methods": METHODS, "events": EVENTS, "capabilities": []},
        "snapshot": {
            "presence": [],
            "health": {"ok": true},
            "stateVersion": {"presence": 0, "health": 0},
            "uptimeMs": now.saturating_sub(shared.started_at_ms),
            "sessionDefaults": {"defaultAgentId": "main", "mainKey": "main", "mainSessionKey": "agent:main:main",
                                "scope": "per-sender", "modelConfigured": true, "ownership": "sole",
                                "selectionRequired": false}
        },
        "auth": auth_out,
        "policy": {"maxPayload": MAX_PAYLOAD, "maxBufferedBytes": MAX_BUFFERED_BYTES,
                   "tickIntervalMs": TICK_INTERVAL.as_millis() as u64}
    });
    Ok((json!({"type": "res", "id": id, "ok": true, "payload": payload}), granted))
}
