//! Secrets that cannot end up in a log line: strings from the command line or environment, and
//! the server secret every per-user credential is derived from.

use std::fmt;
use std::path::Path;
use std::str::FromStr;

use anyhow::Context;

#[derive(Clone)]
pub struct SecretString(String);

impl SecretString {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl FromStr for SecretString {
    type Err = std::convert::Infallible;

    fn from_str(raw: &str) -> Result<Self, Self::Err> {
        Ok(Self(raw.to_owned()))
    }
}

impl fmt::Debug for SecretString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretString(<redacted>)")
    }
}

/// The 32-byte server secret, from which per-user credentials are derived. Never logged.
pub struct ServerSecret([u8; 32]);

impl ServerSecret {
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    pub fn expose(&self) -> &[u8; 32] {
        &self.0
    }

    /// The `--secret-key` hex when given; else `<data_dir>/secret.key`, generated on first use.
    pub fn load(hex_key: Option<&str>, data_dir: &Path) -> anyhow::Result<Self> {
        if let Some(key) = hex_key {
            return Self::parse_hex(key);
        }
        let path = data_dir.join("secret.key");
        if path.exists() {
            crate::private_files::tighten(&path, 0o600)?;
            return Self::parse_hex(
                &std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?,
            );
        }
        crate::private_files::dir(data_dir)?;
        let key = crate::crypto::random_bytes::<32>();
        crate::private_files::write_new(&path, hex::encode(key).as_bytes())?;
        tracing::info!(path = %path.display(), "generated a new server secret");
        Ok(Self(key))
    }

    fn parse_hex(text: &str) -> anyhow::Result<Self> {
        let bytes = hex::decode(text.trim()).context("must be 64 hex characters")?;
        Ok(Self(bytes.try_into().map_err(|_| anyhow::anyhow!("must be 64 hex characters (32 bytes)"))?))
    }
}

impl fmt::Debug for ServerSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ServerSecret(<redacted>)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_the_secret() {
        let secret: SecretString = "sk-very-secret".parse().unwrap();
        assert_eq!(secret.expose(), "sk-very-secret");
        assert!(!format!("{secret:?}").contains("sk-very"));
        assert!(!format!("{:?}", Some(secret)).contains("sk-very"));
    }
}
