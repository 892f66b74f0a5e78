//! The Ed25519 device proof in `connect.params.device`: the device id is the key's hash, the
//! nonce and time are the challenge's, and the signature covers the v3 (or v2) payload.

use base64::Engine;
use serde_json::Value;

use super::handshake::{Challenge, Reject, SIGNATURE_SKEW_MS, device_error, str_field};
use super::now_ms;

/// Lowercase hex sha256 of the raw 32-byte Ed25519 public key (= `device.id`).
fn device_id_for_public_key(raw_public_key: &[u8]) -> String {
    hex::encode(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, raw_public_key).as_ref())
}

/// The v3 device-auth payload string that the client signs (`buildDeviceAuthPayloadV3`).
#[allow(clippy::too_many_arguments)]
fn device_auth_payload_v3(
    device_id: &str,
    client_id: &str,
    client_mode: &str,
    role: &str,
    scopes: &[String],
    signed_at_ms: i64,
    token: &str,
    nonce: &str,
    platform: &str,
    device_family: &str,
) -> String {
    let fields = device_auth_fields(device_id, client_id, client_mode, role, scopes, signed_at_ms, token, nonce);
    format!("v3|{fields}|{}|{}", normalize_meta(platform), normalize_meta(device_family))
}

/// What v2 and v3 proofs both sign, after the version tag.
#[allow(clippy::too_many_arguments)]
fn device_auth_fields(
    device_id: &str,
    client_id: &str,
    client_mode: &str,
    role: &str,
    scopes: &[String],
    signed_at_ms: i64,
    token: &str,
    nonce: &str,
) -> String {
    format!("{device_id}|{client_id}|{client_mode}|{role}|{}|{signed_at_ms}|{token}|{nonce}", scopes.join(","))
}

fn normalize_meta(v: &str) -> String {
    v.trim().to_ascii_lowercase()
}

fn decode_b64url(s: &str) -> Option<Vec<u8>> {
    let s = s.trim().trim_end_matches('=');
    base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(s).ok()
}

#[allow(clippy::too_many_arguments)]
pub(super) fn verify_device(
    id: &Value,
    d: &Value,
    challenge: &Challenge,
    client_id: &str,
    client_mode: &str,
    role: &str,
    scopes: &[String],
    token: &str,
    platform: &str,
    device_family: &str,
) -> Result<(), Reject> {
    let nonce = str_field(d, "nonce").unwrap_or("");
    if nonce.is_empty() {
        return Err(device_error(id, "device nonce required", "DEVICE_AUTH_NONCE_REQUIRED", "device-nonce-missing"));
    }
    if nonce != challenge.nonce {
        return Err(device_error(id, "device nonce mismatch", "DEVICE_AUTH_NONCE_MISMATCH", "device-nonce-mismatch"));
    }
    let pk_invalid =
        || device_error(id, "device public key invalid", "DEVICE_AUTH_PUBLIC_KEY_INVALID", "device-public-key");
    let Some(public_key) = str_field(d, "publicKey").and_then(decode_b64url) else {
        return Err(pk_invalid());
    };
    if public_key.len() != 32 {
        return Err(pk_invalid());
    }
    let device_id = str_field(d, "id").unwrap_or("");
    if device_id != device_id_for_public_key(&public_key) {
        return Err(device_error(
            id,
            "device identity mismatch",
            "DEVICE_AUTH_DEVICE_ID_MISMATCH",
            "device-id-mismatch",
        ));
    }
    let expired =
        || device_error(id, "device signature expired", "DEVICE_AUTH_SIGNATURE_EXPIRED", "device-signature-stale");
    let Some(signed_at) = d.get("signedAt").and_then(Value::as_i64) else {
        return Err(expired());
    };
    let now = now_ms() as i64;
    if (now - signed_at).abs() > SIGNATURE_SKEW_MS || signed_at != challenge.ts as i64 {
        return Err(expired());
    }
    let sig_invalid =
        || device_error(id, "device signature invalid", "DEVICE_AUTH_SIGNATURE_INVALID", "device-signature");
    let Some(signature) = str_field(d, "signature").and_then(decode_b64url) else {
        return Err(sig_invalid());
    };
    let key = aws_lc_rs::signature::UnparsedPublicKey::new(&aws_lc_rs::signature::ED25519, &public_key);
    let v3 = device_auth_payload_v3(
        device_id,
        client_id,
        client_mode,
        role,
        scopes,
        signed_at,
        token,
        nonce,
        platform,
        device_family,
    );
    if key.verify(v3.as_bytes(), &signature).is_ok() {
        return Ok(());
    }
    let v2 =
        format!("v2|{}", device_auth_fields(device_id, client_id, client_mode, role, scopes, signed_at, token, nonce));
    if key.verify(v2.as_bytes(), &signature).is_ok() {
        return Ok(());
    }
    Err(sig_invalid())
}
