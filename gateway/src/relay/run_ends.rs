//! How each chat's recent runs ended when they did not finish: the agent's `chat.history` keeps
//! a stopped reply's text but not that it was cut off, so Roost keeps it for the page, in the
//! database (`db::chat_run_ends`): a reload, another tab, a restart of Roost or another instance
//! all show it.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use serde::Serialize;

use crate::chat::SessionKey;
use crate::db::{Db, chat_run_ends};
use crate::domain::{UserId, now_secs};

/// Writes under way at once; past this an end is logged and not kept (a flood of failing runs
/// must not pile up tasks).
const MAX_PENDING: usize = 256;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RunEnd {
    /// `aborted` or `error`.
    pub state: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// When Roost heard the end (seconds): it belongs to the last message at or before it.
    pub ts: i64,
}

impl RunEnd {
    /// The states worth keeping: a run that ended otherwise finished.
    pub fn state_of(state: &str) -> Option<&'static str> {
        match state {
            "aborted" => Some("aborted"),
            "error" => Some("error"),
            _ => None,
        }
    }
}

pub struct RunEnds {
    db: Db,
    pending: Arc<AtomicUsize>,
}

impl RunEnds {
    pub fn new(db: Db) -> Self {
        Self { db, pending: Arc::default() }
    }

    /// Keeps the end of a stopped or failed run, written in the background (called from the
    /// relay, which must not wait on the database).
    pub fn record(&self, user: &UserId, session_key: &str, state: &str, message: Option<&str>) {
        let (Some(state), Some(key)) = (RunEnd::state_of(state), SessionKey::from_agent(session_key)) else { return };
        if self.pending.fetch_add(1, Ordering::Relaxed) >= MAX_PENDING {
            self.pending.fetch_sub(1, Ordering::Relaxed);
            tracing::warn!(user_id = %user, "too many run ends being written; one is not kept");
            return;
        }
        let end = RunEnd { state, message: message.map(|m| m.chars().take(500).collect()), ts: now_secs() };
        let (db, pending, user) = (self.db.clone(), self.pending.clone(), user.clone());
        tokio::spawn(async move {
            let written = match db.conn() {
                Ok(conn) => chat_run_ends::record(&conn, &user, &key, &end).await,
                Err(e) => Err(e),
            };
            if let Err(e) = written {
                tracing::warn!(user_id = %user, error = %e, "keeping how a run ended failed");
            }
            pending.fetch_sub(1, Ordering::Relaxed);
        });
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
}
