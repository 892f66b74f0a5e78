//! History: served from the DB cache at once, refreshed from the agent's `chat.history`.

use std::time::Duration;

use libsql::{Connection, TransactionBehavior};
use serde::Serialize;
use serde_json::{Value, json};
use tokio::sync::mpsc;

use super::SessionKey;
use super::sessions;
use crate::app::AppState;
use crate::domain::UserId;

pub const MAX_LIMIT: u32 = 200;
const RPC_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Message {
    pub role: String,
    pub text: String,
    pub ts: i64,
}

pub async fn cached(
    conn: &Connection,
    user: &UserId,
    key: &SessionKey,
    limit: u32,
) -> Result<Vec<Message>, libsql::Error> {
    let mut rows = conn
        .query(
            "SELECT role, text, ts FROM (
                SELECT role, text, ts, position FROM chat_messages WHERE user_id = ?1 AND session_key = ?2
                ORDER BY position DESC LIMIT ?3
             ) ORDER BY position",
            (user.as_str(), key.as_str(), i64::from(limit)),
        )
        .await?;
    let mut messages = Vec::new();
    while let Some(row) = rows.next().await? {
        messages.push(Message { role: row.get(0)?, text: row.get(1)?, ts: row.get(2)? });
    }
    Ok(messages)
}

/// Asks the agent for the session's history and replaces the cache with it.
/// `None` when the agent is not ready (nothing is started for this).
pub async fn refresh(state: &AppState, user: &UserId, key: &SessionKey) -> anyhow::Result<Option<Vec<Message>>> {
    let Some(address) = state.machines.address_if_ready(user).await else { return Ok(None) };
    let token = crate::agent_credentials::gateway_token(&state.secret, user);
    let hub = state.relays.hub(user, &address, &token).await?;
    let response =
        hub.call("chat.history", json!({ "sessionKey": key.as_str(), "limit": MAX_LIMIT }), RPC_TIMEOUT).await?;
    if response["ok"] != true {
        anyhow::bail!("chat.history failed: {}", response["error"]);
    }
    let messages = parse_history(&response["payload"]);
    store(&*state.db.conn()?, user, key, &messages).await?;
    Ok(Some(messages))
}

async fn store(conn: &Connection, user: &UserId, key: &SessionKey, messages: &[Message]) -> Result<(), libsql::Error> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate).await?;
    tx.execute("DELETE FROM chat_messages WHERE user_id = ?1 AND session_key = ?2", (user.as_str(), key.as_str()))
        .await?;
    for (position, m) in messages.iter().enumerate() {
        tx.execute(
            "INSERT INTO chat_messages (user_id, session_key, position, role, text, ts) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            (user.as_str(), key.as_str(), position as i64, m.role.as_str(), m.text.as_str(), m.ts),
        )
        .await?;
    }
    tx.commit().await
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
                let _ = sessions::create(&conn, &user, &key, &default_title(&key)).await;
                let _ = sessions::touch(&conn, &user, &key).await;
            }
            if let Err(e) = refresh(&state, &user, &key).await {
                tracing::debug!(error = %e, "history refresh failed");
            }
        });
    }
}

pub fn default_title(key: &SessionKey) -> String {
    if key.as_str() == SessionKey::MAIN { "Main chat".into() } else { "New chat".into() }
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
