//! How each chat's recent runs ended when they did not finish: the agent's `chat.history` keeps
//! a stopped reply's text but not that it was cut off, so Roost remembers it for the page.
//!
//! Kept in memory: a reload (or another tab) shows it; a Roost restart forgets it.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;

use serde::Serialize;

use crate::chat::SessionKey;
use crate::domain::{UserId, now_secs};

/// Ends kept per chat (the page shows the newest 100 messages).
const PER_CHAT: usize = 32;
/// Chats remembered in all; past this an arbitrary chat's ends are forgotten.
const CHATS: usize = 10_000;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RunEnd {
    /// `aborted` or `error`.
    pub state: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// When Roost heard the end (seconds): it belongs to the last message at or before it.
    pub ts: i64,
}

#[derive(Default)]
pub struct RunEnds(Mutex<HashMap<(UserId, SessionKey), VecDeque<RunEnd>>>);

impl RunEnds {
    pub fn record(&self, user: &UserId, session_key: &str, state: &str, message: Option<&str>) {
        let state = match state {
            "aborted" => "aborted",
            "error" => "error",
            _ => return,
        };
        let Some(key) = SessionKey::from_agent(session_key) else { return };
        let end = RunEnd { state, message: message.map(str::to_string), ts: now_secs() };
        let mut ends = self.0.lock().expect("run ends lock");
        if ends.len() >= CHATS
            && !ends.contains_key(&(user.clone(), key.clone()))
            && let Some(any) = ends.keys().next().cloned()
        {
            ends.remove(&any);
        }
        let chat = ends.entry((user.clone(), key)).or_default();
        if chat.len() >= PER_CHAT {
            chat.pop_front();
        }
        chat.push_back(end);
    }

    pub fn of(&self, user: &UserId, key: &SessionKey) -> Vec<RunEnd> {
        let ends = self.0.lock().expect("run ends lock");
        ends.get(&(user.clone(), key.clone())).map(|c| c.iter().cloned().collect()).unwrap_or_default()
    }

    /// A deleted chat or account takes its ends along.
    pub fn forget(&self, user: &UserId, key: Option<&SessionKey>) {
        let mut ends = self.0.lock().expect("run ends lock");
        match key {
            Some(key) => {
                ends.remove(&(user.clone(), key.clone()));
            }
            None => ends.retain(|(u, _), _| u != user),
        }
    }
}

/// Each end marks the last message at or before it (the stopped reply, or the user's message
/// when the agent had not replied yet), as `end` on that message.
pub fn mark(messages: &mut [serde_json::Value], ends: &[RunEnd]) {
    for end in ends {
        let last = messages.iter_mut().rev().find(|m| m["ts"].as_i64().is_some_and(|ts| ts <= end.ts));
        if let Some(message) = last {
            message["end"] = serde_json::json!(end);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn an_end_marks_the_last_message_before_it() {
        let mut messages =
            vec![json!({"role":"user","ts":10}), json!({"role":"assistant","ts":11}), json!({"role":"user","ts":20})];
        mark(&mut messages, &[RunEnd { state: "aborted", message: None, ts: 12 }]);
        assert_eq!(messages[1]["end"]["state"], "aborted");
        assert!(messages[0].get("end").is_none() && messages[2].get("end").is_none());
    }

    #[test]
    fn ends_are_bounded_per_chat() {
        let ends = RunEnds::default();
        let user = UserId::parse("00000000-0000-4000-8000-000000000001").unwrap();
        for _ in 0..PER_CHAT + 5 {
            ends.record(&user, "agent:main:main", "aborted", None);
        }
        ends.record(&user, "main", "final", None);
        assert_eq!(ends.of(&user, &SessionKey::main()).len(), PER_CHAT);
    }
}
