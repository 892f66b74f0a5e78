//! Small wrappers over aws-lc-rs, the one crypto library in the build.

use aws_lc_rs::{digest, hmac, rand};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

pub fn random_bytes<const N: usize>() -> [u8; N] {
    let mut bytes = [0u8; N];
    rand::fill(&mut bytes).expect("the system RNG is available");
    bytes
}

/// 256 random bits as unpadded base64url.
pub fn random_token() -> String {
    URL_SAFE_NO_PAD.encode(random_bytes::<32>())
}

pub fn sha256_hex(data: &[u8]) -> String {
    hex::encode(digest::digest(&digest::SHA256, data))
}

pub fn hmac_sha256(key: &[u8], data: &[u8]) -> Vec<u8> {
    hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, key), data).as_ref().to_vec()
}

/// Constant-time check of an HMAC-SHA256 tag.
pub fn hmac_sha256_verify(key: &[u8], data: &[u8], tag: &[u8]) -> bool {
    hmac::verify(&hmac::Key::new(hmac::HMAC_SHA256, key), data, tag).is_ok()
}

/// Compares two secrets in time that does not depend on where they differ.
pub fn same_secret(a: &[u8], b: &[u8]) -> bool {
    aws_lc_rs::constant_time::verify_slices_are_equal(a, b).is_ok()
}

pub fn b64url(data: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(data)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sha256_of_known_token_matches_the_research_vector() {
        let token: Vec<u8> = (0u8..32).collect();
        assert_eq!(b64url(&token), "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8");
        // Session tokens are stored as the SHA-256 of their base64url text (value from `sha256sum`).
        assert_eq!(
            sha256_hex(b64url(&token).as_bytes()),
            "ea866a757e4c38babfa8127cbe9a409d3e1f93a00ff1488ff735fcf917afffd0"
        );
        assert_eq!(sha256_hex(&token), "630dcd2966c4336691125448bbb25b4ff412a49c732db2c8abc1b8581bd710dd");
    }

    #[test]
    fn hmac_verify_rejects_a_flipped_bit() {
        let mut tag = hmac_sha256(b"k", b"data");
        assert!(hmac_sha256_verify(b"k", b"data", &tag));
        tag[0] ^= 1;
        assert!(!hmac_sha256_verify(b"k", b"data", &tag));
    }
}
