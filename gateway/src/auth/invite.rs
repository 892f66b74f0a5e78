//! Invite codes: `inv_` + 120 random bits, shown once, stored as SHA-256; and the rules for
//! making one (how many uses, how long it lasts).

use crate::crypto::{b64url, random_bytes, sha256_hex};

pub const PREFIX: &str = "inv_";
/// The code's first characters name it in lists and the audit log (`inv_` + 6).
const ID_LEN: usize = PREFIX.len() + 6;
pub const MAX_USES: u32 = 10_000;
const MAX_DAYS: u64 = 365;

pub struct FreshInvite {
    pub code: String,
    pub id: String,
    pub hash: String,
}

pub fn generate() -> FreshInvite {
    let code = format!("{PREFIX}{}", b64url(&random_bytes::<15>()));
    FreshInvite { id: code[..ID_LEN].to_string(), hash: hash(&code), code }
}

/// The hash of a code as typed: surrounding spaces do not count.
pub fn hash(code: &str) -> String {
    sha256_hex(code.trim().as_bytes())
}

/// How many seconds an invite lasts: `7d`, `12h`, `30m`, from 1 minute to a year.
pub fn lifetime_secs(raw: &str) -> Result<i64, String> {
    let raw = raw.trim();
    let secs = match raw.strip_suffix('d') {
        Some(days) => days.parse::<u64>().ok().and_then(|d| d.checked_mul(86_400)),
        None => crate::lifecycle::parse_duration(raw).ok().flatten().map(|d| d.as_secs()),
    };
    match secs {
        Some(secs) if (60..=MAX_DAYS * 86_400).contains(&secs) => Ok(secs as i64),
        _ => Err(format!("{raw:?} is not a lifetime from 1 minute to 365 days, like 7d, 12h or 30m")),
    }
}

/// Uses from 1 to [`MAX_USES`].
pub fn uses(n: u32) -> Result<u32, String> {
    if (1..=MAX_USES).contains(&n) {
        Ok(n)
    } else {
        Err(format!("an invite code is good for 1 to {MAX_USES} accounts, not {n}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_have_their_shape_and_lifetimes_read_as_written() {
        let invite = generate();
        assert!(invite.code.starts_with(&invite.id) && invite.code.len() == PREFIX.len() + 20);
        assert_eq!(invite.hash, hash(&format!(" {} ", invite.code)));
        assert_ne!(generate().code, invite.code);
        assert_eq!(lifetime_secs("7d"), Ok(7 * 86_400));
        assert_eq!(lifetime_secs("12h"), Ok(12 * 3600));
        for bad in ["0", "30s", "366d", "soon", "-1d", ""] {
            assert!(lifetime_secs(bad).is_err(), "{bad:?}");
        }
        assert!(uses(0).is_err() && uses(MAX_USES + 1).is_err() && uses(3) == Ok(3));
    }
}
