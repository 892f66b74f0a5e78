//! App names and machine metadata keys.
//!
//! App names are one namespace across every Fly customer (pitfall 1), so a user's app name is
//! an HMAC of the user id under the deployment's secret: stable for that user (a crashed
//! provision finds its app again), unguessable from outside (nobody can squat a user's name or
//! learn user ids from it), and distinct between Roost deployments. If another customer holds
//! the name anyway (`GET` answers 403), the provider moves to the next `attempt` and stores the
//! name it got in its row.

use std::collections::BTreeMap;

use aws_lc_rs::hmac;

/// The metadata key holding the Roost user id; checked before adopting an existing app or
/// machine (hash collisions, §6 item 2).
pub const USER_ID: &str = "user_id";
/// The metadata key holding the provisioning attempt's ULID: the idempotency tag machine creates
/// are looked up by (§6 item 6).
pub const PROVISION_ID: &str = "provision_id";
/// The marker key on every machine Roost creates, so the sweeper finds ours among an org's.
pub const MANAGED_BY: &str = "managed_by";
pub const MANAGED_BY_ROOST: &str = "roost";

/// The longest app name: "under 63 chars" (flyctl's validation message).
pub const MAX_APP_NAME: usize = 62;

/// 16 base32 characters: 80 bits, far beyond any collision risk for a user count.
const HASH_CHARS: usize = 16;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    #[error("an app name prefix must be 1 to {max} lowercase letters, digits and dashes, starting with a letter")]
    BadPrefix { max: usize },
}

/// `<prefix>-<16 base32 chars>`, from the user id under `key` (the deployment's secret).
/// `attempt` 0 is the first choice; later ones are for when a name is taken elsewhere.
pub fn app_name(prefix: &str, key: &[u8], user_id: &str, attempt: u32) -> Result<String, NameError> {
    let max = MAX_APP_NAME - HASH_CHARS - 1;
    let prefix_ok = !prefix.is_empty()
        && prefix.len() <= max
        && prefix.starts_with(|c: char| c.is_ascii_lowercase())
        && prefix.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    if !prefix_ok {
        return Err(NameError::BadPrefix { max });
    }
    let key = hmac::Key::new(hmac::HMAC_SHA256, key);
    let mut message = format!("roost app name\0{user_id}");
    if attempt > 0 {
        message.push_str(&format!("\0{attempt}"));
    }
    let tag = hmac::sign(&key, message.as_bytes());
    let mut name = format!("{}-", prefix.trim_end_matches('-'));
    name.push_str(&base32_lower(tag.as_ref())[..HASH_CHARS]);
    Ok(name)
}

/// Fly's rule as flyctl states it: under 63 characters of lowercase letters, digits and dashes.
/// Starting with a letter and not ending with a dash are inferred from the name being a DNS
/// label (`<app>.fly.dev`, `<app>.internal`).
pub fn is_valid_app_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_APP_NAME
        && name.starts_with(|c: char| c.is_ascii_lowercase())
        && !name.ends_with('-')
        && name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

/// The metadata every Roost machine carries.
pub fn machine_metadata(user_id: &str, provision_id: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        (USER_ID.to_string(), user_id.to_string()),
        (PROVISION_ID.to_string(), provision_id.to_string()),
        (MANAGED_BY.to_string(), MANAGED_BY_ROOST.to_string()),
    ])
}

/// RFC 4648 base32 in lowercase, without padding: only characters app names allow.
fn base32_lower(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 32] = b"abcdefghijklmnopqrstuvwxyz234567";
    let mut out = String::with_capacity(bytes.len() * 8 / 5 + 1);
    let (mut buffer, mut bits) = (0u32, 0u32);
    for &b in bytes {
        buffer = (buffer << 8) | u32::from(b);
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            out.push(ALPHABET[((buffer >> bits) & 31) as usize] as char);
        }
    }
    if bits > 0 {
        out.push(ALPHABET[((buffer << (5 - bits)) & 31) as usize] as char);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &[u8] = b"deployment secret";

    #[test]
    fn names_are_stable_valid_and_distinct() {
        let a = app_name("roost", KEY, "usr_1", 0).unwrap();
        assert_eq!(a, app_name("roost", KEY, "usr_1", 0).unwrap(), "deterministic");
        assert!(a.starts_with("roost-") && a.len() == "roost-".len() + 16, "{a}");
        assert!(is_valid_app_name(&a), "{a}");
        assert_ne!(a, app_name("roost", KEY, "usr_2", 0).unwrap(), "per user");
        assert_ne!(a, app_name("roost", b"another deployment", "usr_1", 0).unwrap(), "per deployment");
        assert_ne!(a, app_name("roost", KEY, "usr_1", 1).unwrap(), "per attempt");
        assert!(!a.contains("usr"), "the user id does not show");
    }

    #[test]
    fn odd_user_ids_still_give_valid_names() {
        for id in ["", "UPPER", "ü/..\\ \0", &"x".repeat(10_000)] {
            assert!(is_valid_app_name(&app_name("oc", KEY, id, 0).unwrap()), "{id:?}");
        }
    }

    #[test]
    fn prefixes_are_checked() {
        for bad in ["", "Roost", "1abc", "a_b", &"a".repeat(46)] {
            assert!(app_name(bad, KEY, "u", 0).is_err(), "{bad:?}");
        }
        assert!(app_name(&"a".repeat(45), KEY, "u", 0).is_ok());
        assert_eq!(app_name("oc-", KEY, "u", 0).unwrap().matches("--").count(), 0);
    }

    #[test]
    fn app_name_rules() {
        assert!(is_valid_app_name("oc-u7f3k2"));
        for bad in ["", "-a", "a-", "A", "a.b", "a_b", &"a".repeat(63)] {
            assert!(!is_valid_app_name(bad), "{bad:?}");
        }
        assert!(is_valid_app_name(&"a".repeat(62)));
    }

    #[test]
    fn base32_matches_rfc4648() {
        assert_eq!(base32_lower(b"foobar"), "mzxw6ytboi");
        assert_eq!(base32_lower(b"f"), "my");
    }

    #[test]
    fn metadata_carries_the_marker() {
        let m = machine_metadata("usr_1", "01J");
        assert_eq!(m[USER_ID], "usr_1");
        assert_eq!(m[PROVISION_ID], "01J");
        assert_eq!(m[MANAGED_BY], MANAGED_BY_ROOST);
    }
}
