//! Argon2id hashing on a few threads of Roost's own ([`HashPool`]), refused with 503 once
//! enough hashes are running or waiting (each takes ~19 MiB).

use std::sync::{Arc, OnceLock};

use argon2::password_hash::SaltString;
use argon2::{Argon2, PasswordHash, PasswordHasher as _, PasswordVerifier};

use super::hash_pool::{Admitted, Busy, HashPool};
use crate::crypto::random_bytes;
use crate::error::{AppError, AppResult};

/// Hashes waiting for a thread, past those running. At ~40 ms a hash on one core, a full
/// line clears in well under a second on two cores; it holds little memory (a password each).
pub const DEFAULT_QUEUE: usize = 64;
/// More threads than this would let a burst hold `threads × 19 MiB` for little gain.
const MAX_DEFAULT_WORKERS: usize = 4;

#[derive(Clone)]
pub struct PasswordHasher {
    pool: Arc<HashPool>,
}

/// One thread per core, up to [`MAX_DEFAULT_WORKERS`].
pub fn default_workers() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get()).min(MAX_DEFAULT_WORKERS)
}

impl PasswordHasher {
    pub fn new(workers: usize, queue: usize) -> std::io::Result<Self> {
        Ok(Self { pool: Arc::new(HashPool::start(workers, queue)?) })
    }

    /// A place for one hash or check, or 503 with `Retry-After` when the line is full.
    pub fn admit(&self) -> AppResult<Admitted> {
        self.pool.admit().map_err(|Busy| {
            AppError::unavailable(
                "busy",
                "The server is checking too many passwords right now. Please try again in a moment.",
                1,
            )
        })
    }

    pub async fn hash(&self, password: &str) -> AppResult<String> {
        let admitted = self.admit()?;
        let password = password.to_owned();
        let hashed = self.pool.run(admitted, move || hash_blocking(&password)).await;
        Ok(hashed.ok_or_else(|| anyhow::anyhow!("the hash thread failed"))??)
    }

    /// Checks a password against a stored PHC string. With no stored hash it still does the work
    /// of one check, so unknown emails take as long as wrong passwords.
    pub async fn verify(&self, password: &str, stored: Option<String>) -> AppResult<bool> {
        let admitted = self.admit()?;
        let password = password.to_owned();
        let checked = self
            .pool
            .run(admitted, move || {
                let known = stored.is_some();
                let phc = stored.unwrap_or_else(|| dummy_hash().to_owned());
                let parsed = PasswordHash::new(&phc).map_err(|e| anyhow::anyhow!("stored hash unreadable: {e}"))?;
                anyhow::Ok(Argon2::default().verify_password(password.as_bytes(), &parsed).is_ok() && known)
            })
            .await;
        Ok(checked.ok_or_else(|| anyhow::anyhow!("the hash thread failed"))??)
    }
}

fn hash_blocking(password: &str) -> anyhow::Result<String> {
    let salt = SaltString::encode_b64(&random_bytes::<16>()).map_err(|e| anyhow::anyhow!("salt: {e}"))?;
    Ok(Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map_err(|e| anyhow::anyhow!("argon2: {e}"))?
        .to_string())
}

fn dummy_hash() -> &'static str {
    static DUMMY: OnceLock<String> = OnceLock::new();
    DUMMY.get_or_init(|| hash_blocking("dummy password for timing").expect("hashing a constant works"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn hashes_are_argon2id_and_verify() {
        let hasher = PasswordHasher::new(2, 0).unwrap();
        let hash = hasher.hash("correct horse").await.unwrap();
        assert!(hash.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"));
        assert!(hasher.verify("correct horse", Some(hash.clone())).await.unwrap());
        assert!(!hasher.verify("wrong horse", Some(hash)).await.unwrap());
        assert!(!hasher.verify("dummy password for timing", None).await.unwrap());
    }

    #[test]
    fn matches_the_cross_checked_vector() {
        let salt = SaltString::encode_b64(&(0u8..16).collect::<Vec<_>>()).unwrap();
        let hash = Argon2::default().hash_password(b"correct horse battery staple", &salt).unwrap().to_string();
        assert_eq!(
            hash,
            "$argon2id$v=19$m=19456,t=2,p=1$AAECAwQFBgcICQoLDA0ODw$gYJZtjEAJqjg26xdLmknq8/bB7MiWPrE9hsYuA+SkIU"
        );
    }
}
