//! Small wrappers over aws-lc-rs, the one crypto library in the build.

use aws_lc_rs::{aead, digest, hmac, rand};
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

/// The key version [`seal`] writes. A new version means a new derivation label; rows keep the
/// version they were sealed with, so old ones can still be opened and re-sealed.
pub const SEAL_KEY_VERSION: i64 = 1;

fn seal_key(secret: &[u8; 32], version: i64) -> Option<aead::LessSafeKey> {
    let label = match version {
        1 => b"roost sealed secrets v1".as_slice(),
        _ => return None,
    };
    let key = hmac_sha256(secret, label);
    Some(aead::LessSafeKey::new(aead::UnboundKey::new(&aead::AES_256_GCM, &key).ok()?))
}

/// AES-256-GCM under a key derived from the server secret: `nonce || ciphertext || tag`.
/// `context` (e.g. the owner and purpose) is authenticated, so a sealed value only opens where
/// it was written.
pub fn seal(secret: &[u8; 32], context: &str, plaintext: &[u8]) -> Vec<u8> {
    let key = seal_key(secret, SEAL_KEY_VERSION).expect("the current version has a key");
    let nonce = random_bytes::<{ aead::NONCE_LEN }>();
    let mut sealed = plaintext.to_vec();
    key.seal_in_place_append_tag(
        aead::Nonce::assume_unique_for_key(nonce),
        aead::Aad::from(context.as_bytes()),
        &mut sealed,
    )
    .expect("sealing a short value succeeds");
    let mut out = nonce.to_vec();
    out.extend_from_slice(&sealed);
    out
}

/// The plaintext of a [`seal`]ed value, if it is genuine for this secret, version and context.
pub fn open(secret: &[u8; 32], version: i64, context: &str, sealed: &[u8]) -> Option<Vec<u8>> {
    let key = seal_key(secret, version)?;
    let (nonce, body) = sealed.split_at_checked(aead::NONCE_LEN)?;
    let nonce = aead::Nonce::try_assume_unique_for_key(nonce).ok()?;
    let mut body = body.to_vec();
    let plain = key.open_in_place(nonce, aead::Aad::from(context.as_bytes()), &mut body).ok()?;
    Some(plain.to_vec())
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
    fn sealed_values_open_only_with_their_secret_and_context() {
        let sealed = seal(&[1; 32], "u1/telegram", b"123:abc");
        assert!(!contains(&sealed, b"123:abc"));
        assert_eq!(open(&[1; 32], SEAL_KEY_VERSION, "u1/telegram", &sealed).as_deref(), Some(&b"123:abc"[..]));
        assert_eq!(open(&[2; 32], SEAL_KEY_VERSION, "u1/telegram", &sealed), None);
        assert_eq!(open(&[1; 32], SEAL_KEY_VERSION, "u2/telegram", &sealed), None);
        assert_eq!(open(&[1; 32], 99, "u1/telegram", &sealed), None);
        let mut flipped = sealed.clone();
        flipped[20] ^= 1;
        assert_eq!(open(&[1; 32], SEAL_KEY_VERSION, "u1/telegram", &flipped), None);
        assert_ne!(seal(&[1; 32], "c", b"x"), seal(&[1; 32], "c", b"x"), "a fresh nonce each time");
    }

    fn contains(hay: &[u8], needle: &[u8]) -> bool {
        hay.windows(needle.len()).any(|w| w == needle)
    }

    #[test]
    fn hmac_verify_rejects_a_flipped_bit() {
        let mut tag = hmac_sha256(b"k", b"data");
        assert!(hmac_sha256_verify(b"k", b"data", &tag));
        tag[0] ^= 1;
        assert!(!hmac_sha256_verify(b"k", b"data", &tag));
    }
}
