//! A task as the API shows it (and as its webhook carries it).

use serde_json::{Value, json};

use crate::db::tasks::Task;

/// Model calls recorded this long after a task ended still count for it: a call's usage is
/// written when its stream closes, just after the reply.
pub const CREDIT_GRACE_SECS: i64 = 10;

pub fn task_json(task: &Task, credits_used: i64) -> Value {
    let tool_calls: Value = serde_json::from_str(&task.tool_calls).unwrap_or_else(|_| json!([]));
    json!({
        "id": task.id,
        "status": task.status.as_str(),
        "prompt": task.prompt,
        "session": task.session_key,
        "webhook_url": task.webhook_url,
        "text": task.result_text,
        "tool_calls": tool_calls,
        "credits_used": credits_used,
        "error": task.error,
        "created_at": task.created_at,
        "started_at": task.started_at,
        "finished_at": task.finished_at,
    })
}
