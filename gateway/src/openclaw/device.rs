//! Roost's stable Ed25519 device identity. Agents pair it silently on loopback, so every
//! connection keeps the scopes it asks for.

use std::path::Path;

use anyhow::Context;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{Ed25519KeyPair, KeyPair};

use crate::crypto::{b64url, sha256_hex};

pub struct DeviceIdentity {
    key: Ed25519KeyPair,
    id: String,
    public_key: String,
}

impl DeviceIdentity {
    /// Loads the key from `<data_dir>/device-ed25519.pk8`, creating it (mode 0600) on first use.
    pub fn load_or_create(data_dir: &Path) -> anyhow::Result<Self> {
        let path = data_dir.join("device-ed25519.pk8");
        let pkcs8 = if path.exists() {
            std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?
        } else {
            let doc = Ed25519KeyPair::generate_pkcs8(&SystemRandom::new())
                .map_err(|_| anyhow::anyhow!("key generation failed"))?;
            std::fs::create_dir_all(data_dir)?;
            crate::private_files::write_new(&path, doc.as_ref())?;
            doc.as_ref().to_vec()
        };
        Self::from_pkcs8(&pkcs8).with_context(|| format!("{} is not an Ed25519 PKCS#8 key", path.display()))
    }

    pub fn from_pkcs8(pkcs8: &[u8]) -> anyhow::Result<Self> {
        let key = Ed25519KeyPair::from_pkcs8(pkcs8).map_err(|e| anyhow::anyhow!("{e}"))?;
        let raw = key.public_key().as_ref().to_vec();
        Ok(Self { id: sha256_hex(&raw), public_key: b64url(&raw), key })
    }

    /// Lowercase hex SHA-256 of the raw public key, as OpenClaw derives it.
    pub fn id(&self) -> &str {
        &self.id
    }

    pub fn public_key(&self) -> &str {
        &self.public_key
    }

    pub fn sign(&self, payload: &str) -> String {
        b64url(self.key.sign(payload.as_bytes()).as_ref())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identity_is_stable_across_loads() {
        let dir = tempfile::tempdir().unwrap();
        let a = DeviceIdentity::load_or_create(dir.path()).unwrap();
        let b = DeviceIdentity::load_or_create(dir.path()).unwrap();
        assert_eq!(a.id(), b.id());
        assert_eq!(a.id().len(), 64);
        let mode = std::os::unix::fs::PermissionsExt::mode(
            &std::fs::metadata(dir.path().join("device-ed25519.pk8")).unwrap().permissions(),
        );
        assert_eq!(mode & 0o077, 0, "the private key is not readable by others");
    }
}
