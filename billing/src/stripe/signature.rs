//! Stripe's webhook signature (research: stripe-billing §1): `Stripe-Signature: t=…,v1=…[,v1=…]`,
//! each `v1` the lowercase hex HMAC-SHA256 of `"{t}.{raw body}"`, keyed by the whole `whsec_…`
//! secret as UTF-8 (prefix included, not decoded). Any `v1` may match (secret rolls); other
//! schemes are ignored (downgrade protection); `t` must be within the tolerance either way.

use aws_lc_rs::hmac;

/// Stripe's SDKs use five minutes.
pub const TOLERANCE_SECS: i64 = 300;

/// Signatures looked at in one header; a roll has two, so more is not Stripe.
const MAX_SIGNATURES: usize = 8;

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("The Stripe-Signature header is malformed: it needs t=<unix time> and v1=<hex signature>.")]
    Malformed,
    #[error("The Stripe-Signature header has no v1 signature.")]
    NoV1,
    #[error("No v1 signature in the Stripe-Signature header matches the body and the webhook secret.")]
    NoMatch,
    #[error("The Stripe-Signature timestamp is more than five minutes away from this server's clock.")]
    Stale,
}

/// Checks `header` against the raw `body`; `secrets` holds the current secret (and, during a
/// roll, the previous one). Returns the signed timestamp.
pub fn verify(header: &str, body: &[u8], secrets: &[&str], now: i64, tolerance: i64) -> Result<i64, SignatureError> {
    let mut t = None;
    let mut v1 = Vec::new();
    for part in header.split(',') {
        let (key, value) = part.trim().split_once('=').ok_or(SignatureError::Malformed)?;
        match key {
            "t" => t = Some(value.parse::<i64>().map_err(|_| SignatureError::Malformed)?),
            "v1" if v1.len() < MAX_SIGNATURES => v1.push(value),
            _ => {}
        }
    }
    let t = t.ok_or(SignatureError::Malformed)?;
    if v1.is_empty() {
        return Err(SignatureError::NoV1);
    }
    let mut signed = Vec::with_capacity(body.len() + 24);
    signed.extend_from_slice(t.to_string().as_bytes());
    signed.push(b'.');
    signed.extend_from_slice(body);
    let matches = secrets.iter().any(|secret| {
        let key = hmac::Key::new(hmac::HMAC_SHA256, secret.as_bytes());
        v1.iter().filter_map(|hex_sig| hex::decode(hex_sig).ok()).any(|tag| hmac::verify(&key, &signed, &tag).is_ok())
    });
    if !matches {
        return Err(SignatureError::NoMatch);
    }
    if now.checked_sub(t).is_none_or(|age| age.abs() > tolerance) {
        return Err(SignatureError::Stale);
    }
    Ok(t)
}

/// The header Stripe would send for `body` at `t` (tests and the fake Stripe sign with it).
pub fn header(body: &[u8], secret: &str, t: i64) -> String {
    let mut signed = format!("{t}.").into_bytes();
    signed.extend_from_slice(body);
    let tag = hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, secret.as_bytes()), &signed);
    format!("t={t},v1={}", hex::encode(tag.as_ref()))
}

#[cfg(test)]
mod tests {
    use super::*;

    // Research §1.4: computed with Python's hmac and checked against four SDKs.
    const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    const T: i64 = 1_700_000_000;
    const BODY: &str = r#"{"id":"evt_test_webhook","object":"event","type":"checkout.session.completed","data":{"object":{"id":"cs_test_123","object":"checkout.session","client_reference_id":"user_42","customer":"cus_test_123","subscription":"sub_test_123","mode":"subscription","payment_status":"paid"}}}"#;
    const V1: &str = "c17f74cb95ad1f52e599fdc121f952294ec5b49070cd51d7c147ef967368ca80";

    fn check(header: &str, body: &str, secrets: &[&str], now: i64) -> Result<i64, SignatureError> {
        verify(header, body.as_bytes(), secrets, now, TOLERANCE_SECS)
    }

    #[test]
    fn the_research_vector_verifies_and_signs_the_same() {
        assert_eq!(BODY.len(), 279);
        assert_eq!(header(BODY.as_bytes(), SECRET, T), format!("t={T},v1={V1}"));
        assert_eq!(check(&format!("t={T},v1={V1}"), BODY, &[SECRET], T + 10), Ok(T));
    }

    #[test]
    fn the_research_negative_cases_are_refused() {
        let good = format!("t={T},v1={V1}");
        // The key is the whole secret: stripping whsec_ gives another signature.
        let stripped = "13cbc669601a2c61fef5c49997cf162d00596ffed9abfd74cb4be54530db281a";
        assert_eq!(check(&format!("t={T},v1={stripped}"), BODY, &[SECRET], T), Err(SignatureError::NoMatch));
        assert_eq!(header(BODY.as_bytes(), "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", T), format!("t={T},v1={stripped}"));
        // A roll: two v1, one per secret; either secret accepts.
        let old = "whsec_oldSecretForRotationTest00000000";
        let old_v1 = "79e49708a84e70d62f2a35d90f7b44cbcbac02b8127e48437ab4a869c480538e";
        let rolled = format!("t={T},v1={old_v1},v1={V1}");
        assert_eq!(check(&rolled, BODY, &[SECRET], T), Ok(T));
        assert_eq!(check(&rolled, BODY, &[old], T), Ok(T));
        assert_eq!(check(&rolled, BODY, &["whsec_other"], T), Err(SignatureError::NoMatch));
        // Test mode's extra v0 is ignored; a v0 alone is no signature.
        assert_eq!(check(&format!("{good},v0={}", "0".repeat(64)), BODY, &[SECRET], T), Ok(T));
        assert_eq!(check(&format!("t={T},v0={V1}"), BODY, &[SECRET], T), Err(SignatureError::NoV1));
        // A tampered body, an edited timestamp.
        let tampered = BODY.replace("\"paid\"", "\"unpaid\"");
        assert_eq!(check(&good, &tampered, &[SECRET], T), Err(SignatureError::NoMatch));
        assert_eq!(
            header(tampered.as_bytes(), SECRET, T),
            format!("t={T},v1=e9fd41c1db19d550a85f218c0542eda617d208fb8ce17c43f2b99008615ab545")
        );
        assert_eq!(check(&format!("t={},v1={V1}", T + 1), BODY, &[SECRET], T), Err(SignatureError::NoMatch));
        assert_eq!(
            header(BODY.as_bytes(), SECRET, T + 1),
            format!("t={},v1=90d0016fc5a29b40f505c7fb3563d711afcb6d9552abe2a377b185db0cba3ba8", T + 1)
        );
        // The clock: 300 s either way, no more.
        assert_eq!(check(&good, BODY, &[SECRET], T + 300), Ok(T));
        assert_eq!(check(&good, BODY, &[SECRET], T + 301), Err(SignatureError::Stale));
        assert_eq!(check(&good, BODY, &[SECRET], T - 1000), Err(SignatureError::Stale), "the future too (abs)");
        // An empty body signs like any other.
        let empty = "cba1e6bca7337490cde16bc4e0003251c7f5bb8e661e3d8e25d141a92c2ec991";
        assert_eq!(check(&format!("t={T},v1={empty}"), "", &[SECRET], T), Ok(T));
    }

    #[test]
    fn malformed_headers_are_refused_without_panicking() {
        for bad in ["", "t", "v1=abc", "t=abc,v1=00", "t=1700000000,v1", ",,,", "t=99999999999999999999,v1=00"] {
            assert!(check(bad, BODY, &[SECRET], T).is_err(), "{bad:?}");
        }
        assert_eq!(check(&format!("t={},v1={V1}", i64::MIN), BODY, &[SECRET], T), Err(SignatureError::NoMatch));
        assert_eq!(check(&format!("t={T},v1=zz"), BODY, &[SECRET], T), Err(SignatureError::NoMatch));
        assert_eq!(
            verify(&format!("t={T},v1={V1}"), BODY.as_bytes(), &[SECRET], i64::MIN, 300),
            Err(SignatureError::Stale)
        );
    }
}
