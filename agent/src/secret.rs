//! The per-machine secret Roost presents on every request (derived by the gateway from the
//! server secret and the user, set as the Fly app secret `ROOST_AGENT_SECRET`).

use std::fmt;

use subtle::ConstantTimeEq;

/// Shorter secrets are refused at start: the gateway's are 43 characters (base64 of 32 bytes).
pub const MIN_LEN: usize = 32;

#[derive(Clone)]
pub struct AgentSecret(Vec<u8>);

impl AgentSecret {
    pub fn parse(value: &str) -> Result<Self, String> {
        if value.len() < MIN_LEN {
            return Err(format!("ROOST_AGENT_SECRET must be at least {MIN_LEN} characters"));
        }
        Ok(Self(value.as_bytes().to_vec()))
    }

    /// Constant time in the presented value (a length mismatch is all it can learn).
    pub fn matches(&self, presented: &[u8]) -> bool {
        self.0.ct_eq(presented).into()
    }
}

impl fmt::Debug for AgentSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("AgentSecret(…)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_exact_secret_matches() {
        let secret = AgentSecret::parse("s3cret-s3cret-s3cret-s3cret-s3cret").unwrap();
        assert!(secret.matches(b"s3cret-s3cret-s3cret-s3cret-s3cret"));
        assert!(!secret.matches(b"s3cret-s3cret-s3cret-s3cret-s3creT"));
        assert!(!secret.matches(b"s3cret-s3cret-s3cret-s3cret-s3cre"));
        assert!(!secret.matches(b""));
        assert!(AgentSecret::parse("short").is_err());
        assert!(!format!("{secret:?}").contains("s3cret"));
    }
}
