//! History: served from the DB cache at once, refreshed from the agent's `chat.history`.

use std::time::Duration;

use serde_json::{Value, json};
use tokio::sync::mpsc;

use super::{Message, SessionKey};
use crate::app::AppState;
use crate::db::chat_sessions::{self, Created};
use crate::domain::UserId;

pub const MAX_LIMIT: u32 = 200;
/// A longer message is cached cut short (the agent keeps it whole).
pub const MAX_MESSAGE_BYTES: usize = 32 * 1024;
/// A chat's cache keeps its newest messages within this.
pub const MAX_CHAT_BYTES: usize = 512 * 1024;
const TRUNCATED: &str = "… (shortened here; your agent keeps the whole message)";
const RPC_TIMEOUT: Duration = Duration::from_secs(10);

/// Asks the agent for the session's history; the cache is updated with it afterwards.
/// `None` when the agent is not ready (nothing is started for this).
pub async fn refresh(state: &AppState, user: &UserId, key: &SessionKey) -> anyhow::Result<Option<Vec<Message>>> {
    let Some(address) = state.machines.address_if_ready(user).await else { return Ok(None) };
    let hub = state.relays.hub(user, &address).await?;
    let response =
        hub.call("chat.history", json!({ "sessionKey": key.as_str(), "limit": MAX_LIMIT }), RPC_TIMEOUT).await?;
    if response["ok"] != true {
        anyhow::bail!("chat.history failed: {}", response["error"]);
    }
    let messages = within_budget(parse_history(&response["payload"]));
    state.history_writes.store(user, key, messages.clone());
    Ok(Some(messages))
}

/// Each message cut to [`MAX_MESSAGE_BYTES`], and the newest ones that fit [`MAX_CHAT_BYTES`].
pub fn within_budget(messages: Vec<Message>) -> Vec<Message> {
    let mut kept: Vec<Message> = Vec::new();
    let mut bytes = 0;
    for mut message in messages.into_iter().rev() {
        if message.text.len() > MAX_MESSAGE_BYTES {
            let mut cut = MAX_MESSAGE_BYTES - TRUNCATED.len();
            while !message.text.is_char_boundary(cut) {
                cut -= 1;
            }
            message.text.truncate(cut);
            message.text.push_str(TRUNCATED);
        }
        bytes += message.text.len();
        if bytes > MAX_CHAT_BYTES {
            break;
        }
        kept.push(message);
    }
    kept.reverse();
    kept
}

/// The user and assistant messages of a `chat.history` payload, as plain text.
pub fn parse_history(payload: &Value) -> Vec<Message> {
    payload["messages"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|m| {
            let role = m["role"].as_str().filter(|r| matches!(*r, "user" | "assistant"))?;
            let text = match &m["content"] {
                Value::String(s) => s.clone(),
                Value::Array(parts) => parts
                    .iter()
                    .filter(|p| p["type"] == "text")
                    .filter_map(|p| p["text"].as_str())
                    .collect::<Vec<_>>()
                    .join(""),
                _ => return None,
            };
            let ts = m["timestamp"].as_i64().map(|t| if t > 100_000_000_000 { t / 1000 } else { t }).unwrap_or(0);
            (!text.is_empty()).then(|| Message { role: role.to_string(), text, ts })
        })
        .collect()
}

/// Refreshes the cache of each session whose run just finished, in the background.
pub async fn refresher(state: AppState, mut finished: mpsc::Receiver<(UserId, String)>) {
    while let Some((user, canonical)) = finished.recv().await {
        let Some(key) = SessionKey::from_agent(&canonical) else { continue };
        let state = state.clone();
        tokio::spawn(async move {
            if let Ok(conn) = state.db.conn() {
                match chat_sessions::create(&conn, &user, &key, &default_title(&key)).await {
                    Ok(Created::AtLimit) => {
                        tracing::info!(user_id = %user, "a chat past the limit was not listed");
                        return;
                    }
                    Ok(_) => {
                        let _ = chat_sessions::touch(&conn, &user, &key).await;
                    }
                    Err(e) => tracing::warn!(error = %e, "recording a chat failed"),
                }
            }
            match refresh(&state, &user, &key).await {
                Ok(Some(messages)) => title_untitled(&state, &user, &key, &messages).await,
                Ok(None) => {}
                Err(e) => tracing::debug!(error = %e, "history refresh failed"),
            }
        });
    }
}

/// A chat without a title takes one from its first message.
async fn title_untitled(state: &AppState, user: &UserId, key: &SessionKey, messages: &[Message]) {
    let Some(title) = messages.iter().find(|m| m.role == "user").and_then(|m| title_from_message(&m.text)) else {
        return;
    };
    if let Ok(conn) = state.db.conn()
        && let Err(e) = chat_sessions::title_from_first_message(&conn, user, key, &title).await
    {
        tracing::warn!(error = %e, "titling a chat failed");
    }
}

/// The longest title taken from a message (characters, before the "…").
const AUTO_TITLE_CHARS: usize = 60;

/// A title from a message: its first line with text, spaces squeezed, cut at a word near 60
/// characters. `None` for a message with no text.
pub fn title_from_message(text: &str) -> Option<String> {
    let line = text.lines().map(str::trim).find(|l| !l.is_empty())?;
    let words: Vec<&str> = line.split_whitespace().collect();
    let squeezed: String = words.join(" ").chars().filter(|c| !c.is_control()).collect();
    if squeezed.chars().count() <= AUTO_TITLE_CHARS {
        return Some(squeezed);
    }
    let cut: String = squeezed.chars().take(AUTO_TITLE_CHARS).collect();
    let at_word = match cut.rfind(' ') {
        Some(i) if i >= AUTO_TITLE_CHARS / 2 => &cut[..i],
        _ => cut.as_str(),
    };
    Some(format!("{}…", at_word.trim_end()))
}

pub fn default_title(key: &SessionKey) -> String {
    if key.is_main() { "Main chat".into() } else { "New chat".into() }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_title_is_the_first_line_cut_at_a_word() {
        assert_eq!(
            title_from_message("  \n  Plan a trip   to Rome\nwith details").as_deref(),
            Some("Plan a trip to Rome")
        );
        assert_eq!(title_from_message("   \n "), None);
        let long = "Please write me a very long essay about the history of the Roman empire and its fall";
        let title = title_from_message(long).unwrap();
        assert_eq!(title, "Please write me a very long essay about the history of the…");
        assert!(title.chars().count() <= AUTO_TITLE_CHARS + 1);
        let one_word = "x".repeat(100);
        assert_eq!(title_from_message(&one_word).unwrap().chars().count(), AUTO_TITLE_CHARS + 1);
    }

    #[test]
    fn history_keeps_user_and_assistant_text() {
        let payload = json!({ "messages": [
            { "role": "user", "content": "hello", "timestamp": 1_795_000_000_000_i64 },
            { "role": "assistant", "content": [{ "type": "text", "text": "Hi" }, { "type": "text", "text": " there" }], "timestamp": 1_795_000_001 },
            { "role": "tool", "content": "x" },
            { "role": "assistant", "content": [{ "type": "image" }] },
        ]});
        let messages = parse_history(&payload);
        assert_eq!(
            messages,
            vec![
                Message { role: "user".into(), text: "hello".into(), ts: 1_795_000_000 },
                Message { role: "assistant".into(), text: "Hi there".into(), ts: 1_795_000_001 },
            ]
        );
    }

    #[test]
    fn the_cache_keeps_the_newest_messages_within_its_budgets() {
        let message = |text: String| Message { role: "user".into(), text, ts: 0 };
        let huge = message("é".repeat(2 * 1024 * 1024));
        let kept = within_budget(vec![message("old".into()), huge, message("new".into())]);
        assert_eq!(kept.len(), 3);
        assert!(kept[1].text.len() <= MAX_MESSAGE_BYTES && kept[1].text.ends_with(TRUNCATED));
        assert_eq!(kept[2].text, "new");
        let many: Vec<Message> = (0..100).map(|i| message(format!("{i}{}", "x".repeat(20_000)))).collect();
        let kept = within_budget(many);
        assert!(kept.iter().map(|m| m.text.len()).sum::<usize>() <= MAX_CHAT_BYTES);
        assert!(kept.last().unwrap().text.starts_with("99"), "the newest stay");
        assert!(kept.len() < 100);
    }
}
