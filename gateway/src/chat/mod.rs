//! Chat sessions and the history cache that makes a page load show messages at once.

pub mod history;
pub mod sessions;

use crate::error::AppError;

/// A session key as users and the agent know it (`main`, or a generated key).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionKey(String);

impl SessionKey {
    pub const MAIN: &'static str = "main";

    pub fn parse(raw: &str) -> Result<Self, AppError> {
        let ok =
            (1..=64).contains(&raw.len()) && raw.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if ok { Ok(Self(raw.to_string())) } else { Err(AppError::not_found("no such session")) }
    }

    pub fn generate() -> Self {
        Self(format!("s-{}", &uuid::Uuid::new_v4().simple().to_string()[..12]))
    }

    pub fn main() -> Self {
        Self(Self::MAIN.to_string())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The session key without OpenClaw's `agent:main:` prefix, if it is one of ours.
    pub fn from_agent(canonical: &str) -> Option<Self> {
        Self::parse(canonical.strip_prefix("agent:main:").unwrap_or(canonical)).ok()
    }
}
