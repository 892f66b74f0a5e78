//! Svix webhook signatures, as Clerk sends them: HMAC-SHA256 over `{id}.{timestamp}.{body}`.

use axum::http::HeaderMap;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;

use crate::crypto::hmac_sha256_verify;
use crate::error::AppError;

const TOLERANCE_SECS: i64 = 5 * 60;

/// The key inside a `whsec_…` secret.
pub fn decode_secret(secret: &str) -> anyhow::Result<Vec<u8>> {
    let encoded = secret.strip_prefix("whsec_").unwrap_or(secret);
    STANDARD.decode(encoded).map_err(|_| anyhow::anyhow!("the webhook secret is not whsec_ + base64"))
}

/// Verifies the signature headers against the raw body; returns the message id on success.
pub fn verify(key: &[u8], headers: &HeaderMap, body: &[u8], now: i64) -> Result<String, AppError> {
    let header = |name: &str, alt: &str| {
        headers.get(name).or_else(|| headers.get(alt)).and_then(|v| v.to_str().ok()).ok_or_else(|| {
            AppError::bad_request(
                "missing_signature",
                format!("The webhook has no {name} header, so it cannot be checked."),
            )
        })
    };
    let id = header("svix-id", "webhook-id")?;
    let timestamp = header("svix-timestamp", "webhook-timestamp")?;
    let signatures = header("svix-signature", "webhook-signature")?;

    let sent_at: i64 = timestamp.parse().map_err(|_| {
        AppError::bad_request("invalid_signature", "The webhook's timestamp header is not a number of seconds.")
    })?;
    if (now - sent_at).abs() > TOLERANCE_SECS {
        return Err(AppError::bad_request(
            "stale_signature",
            "The webhook is more than 5 minutes old or ahead, so it was not accepted.",
        ));
    }
    let mut signed = Vec::with_capacity(id.len() + timestamp.len() + body.len() + 2);
    signed.extend_from_slice(format!("{id}.{timestamp}.").as_bytes());
    signed.extend_from_slice(body);
    let matches = signatures
        .split_whitespace()
        .filter_map(|entry| entry.strip_prefix("v1,"))
        .filter_map(|b64| STANDARD.decode(b64).ok())
        .any(|tag| hmac_sha256_verify(key, &signed, &tag));
    if matches {
        Ok(id.to_string())
    } else {
        Err(AppError::bad_request(
            "invalid_signature",
            "The webhook's signature does not match: check the webhook secret.",
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(id: &str, ts: &str, sig: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert("svix-id", id.parse().unwrap());
        h.insert("svix-timestamp", ts.parse().unwrap());
        h.insert("svix-signature", sig.parse().unwrap());
        h
    }

    #[test]
    fn research_vectors_verify() {
        let key = decode_secret("whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD").unwrap();
        let body = br#"{"email":"test@example.com","username":"test_user"}"#;
        let h =
            headers("msg_27UH4WbU6Z5A5EzD8u03UvzRbpk", "1649367553", "v1,tZ1I4/hDygAJgO5TYxiSd6Sd0kDW6hPenDe+bTa3Kkw=");
        assert_eq!(verify(&key, &h, body, 1649367553).unwrap(), "msg_27UH4WbU6Z5A5EzD8u03UvzRbpk");

        let key = decode_secret("whsec_AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=").unwrap();
        let body = br#"{"data":{"deleted":true,"id":"user_29wBMCtzATuFJut8jO2VNTVekS4","object":"user"},"object":"event","type":"user.deleted"}"#;
        let h =
            headers("msg_2TestClerkUserDeleted0001", "1767225600", "v1,NKWOR1GwSjwFkH3TNUcZ32cpkfpbd3+Bq7HUe3KPYJ8=");
        assert!(verify(&key, &h, body, 1767225600).is_ok());
        let mut with_newline = body.to_vec();
        with_newline.push(b'\n');
        assert_eq!(verify(&key, &h, &with_newline, 1767225600).unwrap_err().code(), "invalid_signature");
        // A rotated secret: several signatures, one of them right.
        let h = headers(
            "msg_2TestClerkUserDeleted0001",
            "1767225600",
            "v1,AAAA v1,NKWOR1GwSjwFkH3TNUcZ32cpkfpbd3+Bq7HUe3KPYJ8=",
        );
        assert!(verify(&key, &h, body, 1767225600).is_ok());
    }

    #[test]
    fn stale_and_future_timestamps_are_refused() {
        let key = decode_secret("whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD").unwrap();
        let body = br#"{"email":"test@example.com","username":"test_user"}"#;
        let h =
            headers("msg_27UH4WbU6Z5A5EzD8u03UvzRbpk", "1649367553", "v1,tZ1I4/hDygAJgO5TYxiSd6Sd0kDW6hPenDe+bTa3Kkw=");
        assert_eq!(verify(&key, &h, body, 1649367553 + 301).unwrap_err().code(), "stale_signature");
        assert_eq!(verify(&key, &h, body, 1649367553 - 301).unwrap_err().code(), "stale_signature");
    }
}
