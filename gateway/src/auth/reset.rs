//! Password reset links: 256 random bits in the URL fragment (so no server log or `Referer`
//! carries it), stored as SHA-256, usable once within [`LIFETIME_SECS`].

use crate::crypto::{random_token, sha256_hex};
use crate::db::password_resets;
use crate::domain::{UserId, now_secs};

pub const LIFETIME_SECS: i64 = 30 * 60;

pub fn hash(token: &str) -> String {
    sha256_hex(token.trim().as_bytes())
}

/// Stores a fresh token for the user and returns the link that uses it.
pub async fn issue(conn: &libsql::Connection, user: &UserId, public_origin: &str) -> Result<String, libsql::Error> {
    let token = random_token();
    let now = now_secs();
    password_resets::create(conn, user, &hash(&token), now, now + LIFETIME_SECS).await?;
    Ok(format!("{}/reset#token={token}", public_origin.trim_end_matches('/')))
}
