//! Backups of a simulated agent: its transcripts are written as OpenClaw's session files
//! (`agents/main/sessions/<id>.jsonl`) into a state dir of its own, beside any workspace files,
//! and the real archive code runs on that dir; a restore reads the session files back. So the
//! fast tests exercise the same archive, checks and swap as a local agent's.

use std::collections::HashMap;
use std::path::Path;

use serde_json::{Value, json};

use super::sessions::{Session, StoredMessage};
use super::{Transcripts, lock};

const SESSIONS: &str = "agents/main/sessions";

/// Writes `transcripts` as session files under `state_dir`, replacing the ones there. Blocking.
pub fn write_sessions(state_dir: &Path, transcripts: &Transcripts) -> std::io::Result<()> {
    let dir = state_dir.join(SESSIONS);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)?;
    let sessions = lock(&transcripts.0);
    for (key, session) in sessions.iter() {
        let mut lines =
            vec![json!({ "type": "session", "key": key, "id": session.session_id, "updatedAt": session.updated_at })];
        for m in &session.messages {
            lines.push(
                json!({ "type": "message", "role": m.role, "text": m.text, "timestamp": m.timestamp, "raw": m.raw }),
            );
        }
        let text: String = lines.iter().map(|l| format!("{l}\n")).collect();
        std::fs::write(dir.join(format!("{}.jsonl", session.session_id)), text)?;
    }
    Ok(())
}

/// Reads the session files under `state_dir` back into `transcripts` (replacing every chat).
/// Blocking. A file that is not a session file is skipped.
pub fn read_sessions(state_dir: &Path, transcripts: &Transcripts) -> std::io::Result<()> {
    let mut restored = HashMap::new();
    let entries = match std::fs::read_dir(state_dir.join(SESSIONS)) {
        Ok(entries) => entries.collect::<Result<Vec<_>, _>>()?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(e) => return Err(e),
    };
    for entry in entries {
        let text = std::fs::read_to_string(entry.path())?;
        let mut lines = text.lines().filter_map(|l| serde_json::from_str::<Value>(l).ok());
        let Some(head) = lines.next().filter(|h| h["type"] == "session") else { continue };
        let (Some(key), Some(id)) = (head["key"].as_str(), head["id"].as_str()) else { continue };
        let mut session = Session::new();
        session.session_id = id.to_string();
        session.updated_at = head["updatedAt"].as_u64().unwrap_or(0);
        for line in lines {
            let role = match line["role"].as_str() {
                Some("user") => "user",
                Some("assistant") => "assistant",
                Some("toolResult") => "toolResult",
                _ => continue,
            };
            let timestamp = line["timestamp"].as_u64().unwrap_or(0);
            let mut message =
                StoredMessage::text(role, line["text"].as_str().unwrap_or_default().to_string(), timestamp, None);
            message.raw = line.get("raw").filter(|r| !r.is_null()).cloned();
            session.messages.push(message);
        }
        restored.insert(key.to_string(), session);
    }
    *lock(&transcripts.0) = restored;
    Ok(())
}
