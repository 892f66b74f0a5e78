//! History: served from the DB cache at once, refreshed from the agent's `chat.history`.

use std::time::Duration;

use serde_json::{Value, json};
use tokio::sync::mpsc;

use super::tool_uses::{self, ToolUse};
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
        bytes += message.weight();
        if bytes > MAX_CHAT_BYTES {
            break;
        }
        kept.push(message);
    }
    kept.reverse();
    kept
}

/// The user and assistant messages of a `chat.history` payload, as plain text, each reply with
/// its tool calls. One run's assistant messages (a tool call, then the answer) are one reply, as
/// on the live page.
pub fn parse_history(payload: &Value) -> Vec<Message> {
    let mut out: Vec<Message> = Vec::new();
    let mut reply: Option<(Message, Option<String>)> = None;
    let flush = |out: &mut Vec<Message>, reply: &mut Option<(Message, Option<String>)>| {
        if let Some((message, _)) = reply.take()
            && (!message.text.is_empty() || !message.tools.is_empty())
        {
            out.push(message);
        }
    };
    for m in payload["messages"].as_array().into_iter().flatten() {
        let ts = m["timestamp"].as_i64().map(|t| if t > 100_000_000_000 { t / 1000 } else { t }).unwrap_or(0);
        match m["role"].as_str() {
            Some("user") => {
                flush(&mut out, &mut reply);
                let text = content_text(&m["content"]);
                if !text.is_empty() {
                    out.push(Message::new("user", text, ts));
                }
            }
            Some("assistant") => {
                let run = m["__openclaw"]["runId"].as_str().map(str::to_string);
                let same_run = matches!(&reply, Some((_, Some(r))) if run.as_deref() == Some(r.as_str()));
                if !same_run {
                    flush(&mut out, &mut reply);
                }
                let (message, _) = reply.get_or_insert_with(|| (Message::new("assistant", "", ts), run));
                let text = content_text(&m["content"]);
                if !text.is_empty() {
                    if !message.text.is_empty() {
                        message.text.push_str("\n\n");
                    }
                    message.text.push_str(&text);
                }
                message.ts = message.ts.max(ts);
                for call in m["content"].as_array().into_iter().flatten().filter_map(ToolUse::from_call) {
                    tool_uses::push(&mut message.tools, call);
                }
            }
            Some("toolResult") => {
                let id = m["toolCallId"].as_str().unwrap_or_default();
                if let Some((message, _)) = reply.as_mut()
                    && let Some(tool) = message.tools.iter_mut().find(|t| t.id == id)
                {
                    tool.finish(m);
                }
            }
            _ => {}
        }
    }
    flush(&mut out, &mut reply);
    out
}

/// The text parts of a message's content (a string, or `{type:"text"}` parts).
fn content_text(content: &Value) -> String {
    match content {
        Value::String(s) => s.clone(),
        Value::Array(parts) => {
            parts.iter().filter(|p| p["type"] == "text").filter_map(|p| p["text"].as_str()).collect::<Vec<_>>().join("")
        }
        _ => String::new(),
    }
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
            vec![Message::new("user", "hello", 1_795_000_000), Message::new("assistant", "Hi there", 1_795_000_001),]
        );
    }

    /// The shape OpenClaw 2026.9.6 records for a run with one `exec` call (seen live).
    #[test]
    fn a_reply_keeps_its_tool_calls_and_their_results() {
        let run = json!({ "runId": "r1" });
        let payload = json!({ "messages": [
            { "role": "user", "content": "greet me", "timestamp": 1_796_146_969_273_i64 },
            { "role": "assistant", "__openclaw": run, "timestamp": 1_796_146_977_145_i64, "stopReason": "toolUse",
              "content": [{ "type": "toolCall", "id": "call1", "name": "exec", "arguments": { "command": "echo hi" } },
                          { "type": "toolCall", "id": "call2", "name": "read", "arguments": { "path": "x".repeat(5000) } }] },
            { "role": "toolResult", "__openclaw": run, "toolCallId": "call1", "toolName": "exec", "isError": false,
              "content": [{ "type": "text", "text": "hi" }], "timestamp": 1_796_146_978_125_i64 },
            { "role": "toolResult", "__openclaw": run, "toolCallId": "call2", "toolName": "read", "isError": true,
              "content": [], "timestamp": 1_796_146_978_126_i64 },
            { "role": "assistant", "__openclaw": run, "timestamp": 1_796_146_978_177_i64,
              "content": [{ "type": "text", "text": "It said hi." }] },
            { "role": "assistant", "__openclaw": { "runId": "r2" }, "timestamp": 1_796_146_990_000_i64,
              "content": [{ "type": "toolCall", "id": "call3", "name": "exec", "arguments": {} }] },
            { "role": "user", "content": "next", "timestamp": 1_796_146_999_000_i64 },
        ]});
        let messages = parse_history(&payload);
        let roles: Vec<&str> = messages.iter().map(|m| m.role.as_str()).collect();
        assert_eq!(roles, ["user", "assistant", "assistant", "user"], "one reply per run: {messages:?}");
        let reply = &messages[1];
        assert_eq!((reply.text.as_str(), reply.ts), ("It said hi.", 1_796_146_978));
        assert_eq!(reply.tools.len(), 2);
        assert_eq!((reply.tools[0].name.as_str(), reply.tools[0].status.as_str()), ("exec", "done"));
        assert_eq!(
            (reply.tools[0].args.clone(), reply.tools[0].result.as_str()),
            (json!({ "command": "echo hi" }), "hi")
        );
        assert_eq!((reply.tools[1].status.as_str(), reply.tools[1].result.as_str()), ("error", "The tool failed."));
        let long_args = reply.tools[1].args.as_str().expect("over-long arguments are kept as cut text");
        assert!(long_args.chars().count() < tool_uses::MAX_CHARS + 40 && long_args.ends_with("more characters)"));
        let unfinished = &messages[2];
        assert_eq!((unfinished.text.as_str(), unfinished.tools[0].status.as_str()), ("", "running"));
        let as_json = serde_json::to_value(&messages[0]).unwrap();
        assert!(as_json.get("tools").is_none(), "a message without tools has no tools field: {as_json}");
    }

    #[test]
    fn a_reply_keeps_at_most_its_newest_tool_calls() {
        let calls: Vec<Value> = (0..50)
            .map(|i| json!({ "type": "toolCall", "id": format!("c{i}"), "name": "exec", "arguments": {} }))
            .collect();
        let payload = json!({ "messages": [{ "role": "assistant", "content": calls, "timestamp": 1 }] });
        let reply = &parse_history(&payload)[0];
        assert_eq!(reply.tools.len(), tool_uses::MAX_PER_REPLY);
        assert_eq!(reply.tools.last().unwrap().id, "c49");
    }

    #[test]
    fn the_cache_keeps_the_newest_messages_within_its_budgets() {
        let message = |text: String| Message::new("user", text, 0);
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
