//! Personal API tokens: `rst_` + 256 random bits, shown once, stored as SHA-256.

use crate::crypto::{random_token, sha256_hex};

pub const PREFIX: &str = "rst_";
/// How much of the token the UI shows to tell tokens apart (`rst_` + 8 characters).
const VISIBLE_LEN: usize = PREFIX.len() + 8;

pub struct FreshToken {
    pub secret: String,
    pub visible_prefix: String,
    pub hash: String,
}

pub fn generate() -> FreshToken {
    let secret = format!("{PREFIX}{}", random_token());
    FreshToken { visible_prefix: secret[..VISIBLE_LEN].to_string(), hash: hash(&secret), secret }
}

pub fn hash(secret: &str) -> String {
    sha256_hex(secret.as_bytes())
}

/// Cheap shape check before touching the DB: prefix, length and base64url alphabet.
pub fn looks_valid(candidate: &str) -> bool {
    candidate.len() == PREFIX.len() + 43
        && candidate.starts_with(PREFIX)
        && candidate[PREFIX.len()..].bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_tokens_have_the_documented_shape() {
        let t = generate();
        assert!(looks_valid(&t.secret));
        assert!(t.secret.starts_with(&t.visible_prefix));
        assert_eq!(t.hash.len(), 64);
        assert_ne!(generate().secret, t.secret);
        assert!(!looks_valid("rst_short"));
        assert!(!looks_valid(&t.secret.replace(PREFIX, "xyz_")));
    }
}
