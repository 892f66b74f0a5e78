//! The tool calls of a reply, as OpenClaw's transcript records them (`toolCall` parts of an
//! assistant message, then a `toolResult` message per call), so a reloaded chat shows the same
//! cards as the live one. Bounded like the page's cards.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// At most this many tool calls are kept per reply (the newest win, as on the page).
pub const MAX_PER_REPLY: usize = 40;
/// Arguments and results are kept to this many characters.
pub const MAX_CHARS: usize = 4000;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ToolUse {
    pub id: String,
    pub name: String,
    /// The arguments as the model sent them, or their JSON text cut short when too long.
    pub args: Value,
    /// The result's text, cut short when too long; empty until it ran.
    pub result: String,
    /// `running` (no result recorded), `done` or `error`.
    pub status: String,
}

impl ToolUse {
    /// A `{type:"toolCall", id, name, arguments}` part.
    pub fn from_call(part: &Value) -> Option<Self> {
        if part["type"] != "toolCall" {
            return None;
        }
        let id = part["id"].as_str().filter(|s| !s.is_empty())?;
        let name = part["name"].as_str().filter(|s| !s.is_empty()).unwrap_or("tool");
        let args = &part["arguments"];
        let args = if args.to_string().chars().count() > MAX_CHARS {
            Value::String(clip(&args.to_string()))
        } else {
            args.clone()
        };
        Some(Self {
            id: clip_to(id, 200),
            name: clip_to(name, 200),
            args,
            result: String::new(),
            status: "running".into(),
        })
    }

    /// Records a `{role:"toolResult", toolCallId, content, isError}` message's outcome.
    pub fn finish(&mut self, result: &Value) {
        let text = match &result["content"] {
            Value::String(s) => s.clone(),
            Value::Array(parts) => parts.iter().filter_map(|p| p["text"].as_str()).collect::<Vec<_>>().join("\n"),
            _ => String::new(),
        };
        let failed = result["isError"] == true;
        self.result = if text.is_empty() && failed { "The tool failed.".into() } else { clip(&text) };
        self.status = if failed { "error" } else { "done" }.into();
    }

    /// Bytes this takes in the cache's budget.
    pub fn weight(&self) -> usize {
        self.id.len() + self.name.len() + self.args.to_string().len() + self.result.len()
    }
}

/// Adds a call to a reply's list, dropping the oldest past [`MAX_PER_REPLY`].
pub fn push(tools: &mut Vec<ToolUse>, tool: ToolUse) {
    if tools.len() >= MAX_PER_REPLY {
        tools.remove(0);
    }
    tools.push(tool);
}

fn clip(text: &str) -> String {
    clip_to(text, MAX_CHARS)
}

fn clip_to(text: &str, max: usize) -> String {
    let count = text.chars().count();
    if count <= max {
        return text.to_string();
    }
    let kept: String = text.chars().take(max).collect();
    format!("{kept}… ({} more characters)", count - max)
}
