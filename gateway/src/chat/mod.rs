//! Chat sessions and the history cache that makes a page load show messages at once.

pub mod admission;
pub mod cache;
pub mod history;
pub mod tool_uses;

use serde::Serialize;

use tool_uses::ToolUse;

/// A session key as users and the agent know it (`main`, or a generated key).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SessionKey(String);

/// Not a session key Roost would have made (the routes answer it as "no such session").
#[derive(Debug)]
pub struct InvalidSessionKey;

impl SessionKey {
    pub const MAIN: &'static str = "main";

    pub fn parse(raw: &str) -> Result<Self, InvalidSessionKey> {
        let ok =
            (1..=64).contains(&raw.len()) && raw.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if ok { Ok(Self(raw.to_string())) } else { Err(InvalidSessionKey) }
    }

    pub fn generate() -> Self {
        Self(format!("s-{}", &uuid::Uuid::new_v4().simple().to_string()[..12]))
    }

    pub fn main() -> Self {
        Self(Self::MAIN.to_string())
    }

    pub fn is_main(&self) -> bool {
        self.0 == Self::MAIN
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The session key without OpenClaw's `agent:main:` prefix, if it is one of ours.
    pub fn from_agent(canonical: &str) -> Option<Self> {
        Self::parse(canonical.strip_prefix("agent:main:").unwrap_or(canonical)).ok()
    }
}

/// One message of a chat, as cached and served by `GET /api/sessions/{key}/history`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Message {
    pub role: String,
    pub text: String,
    pub ts: i64,
    /// The tool calls of a reply, in the order they were made, before its text.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub tools: Vec<ToolUse>,
}

impl Message {
    pub fn new(role: &str, text: impl Into<String>, ts: i64) -> Self {
        Self { role: role.to_string(), text: text.into(), ts, tools: Vec::new() }
    }

    /// Bytes this takes in the cache's budget.
    pub fn weight(&self) -> usize {
        self.text.len() + self.tools.iter().map(ToolUse::weight).sum::<usize>()
    }
}
