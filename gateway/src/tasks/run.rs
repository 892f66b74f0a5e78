//! One task's run: wake the agent, connect as Roost (server-side, like the relay), send the
//! prompt as `chat.send` (its `idempotencyKey`, hence its `runId`, is the task id), follow that
//! run's `chat` and `agent` events to its end, and close the task with what happened.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::sync::Notify;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message;

use crate::app::AppState;
use crate::db::tasks::{self, Outcome, Status, Task};
use crate::domain::now_secs;
use crate::openclaw::{AgentSocket, connect_with_retry};

const CONNECT_WITHIN: Duration = Duration::from_secs(60);
/// After `chat.abort`, how long to wait for the run's `aborted` event before closing anyway.
const ABORT_WAIT: Duration = Duration::from_secs(15);
const MAX_TOOL_CALLS: usize = 100;
const MAX_ARGS_CHARS: usize = 2000;
const MAX_TEXT_CHARS: usize = 256 * 1024;
const MAX_ERROR_CHARS: usize = 500;
const SEND_ID: &str = "roost-task-send";
const ABORT_ID: &str = "roost-task-abort";

enum End {
    Completed(String),
    Failed(String),
    Cancelled(String),
}

/// Tool calls seen so far, saved with every heartbeat and at the end.
#[derive(Default)]
struct Progress {
    tools: Vec<Value>,
}

impl Progress {
    /// An `agent` event of stream `tool`: `start` adds a call, `result` settles it.
    fn tool_event(&mut self, data: &Value) {
        let id = data["toolCallId"].as_str().unwrap_or_default();
        match data["phase"].as_str() {
            Some("start") if self.tools.len() < MAX_TOOL_CALLS => {
                let args = data["args"].clone();
                let args = if args.to_string().chars().count() > MAX_ARGS_CHARS {
                    Value::String(args.to_string().chars().take(MAX_ARGS_CHARS).collect())
                } else {
                    args
                };
                let name: String = data["name"].as_str().unwrap_or("tool").chars().take(100).collect();
                self.tools.push(json!({ "id": id, "name": name, "args": args, "status": "running" }));
            }
            Some("result") => {
                if let Some(call) = self.tools.iter_mut().find(|t| t["id"] == id) {
                    call["status"] = json!(if data["isError"] == true { "failed" } else { "ok" });
                }
            }
            _ => {}
        }
    }

    fn json(&self) -> String {
        Value::Array(self.tools.clone()).to_string()
    }
}

pub(super) async fn run(state: &AppState, task: Task, cancel: Arc<Notify>) {
    let progress = Arc::new(Mutex::new(Progress::default()));
    let beat = tokio::spawn(heartbeat(state.clone(), task.id.clone(), progress.clone(), cancel.clone()));
    // Also when this run is aborted at shutdown.
    let _beat = AbortOnDrop(beat.abort_handle());
    let deadline = Instant::now() + state.tasks.settings.timeout;
    let end = drive(state, &task, &progress, &cancel, deadline).await;
    state.machines.activity().run_event(&task.user_id, &task.id, true);
    let tools = progress.lock().expect("progress lock").json();
    let (status, text, error) = match &end {
        End::Completed(text) => (Status::Completed, Some(text.as_str()), None),
        End::Failed(why) => (Status::Failed, None, Some(why.as_str())),
        End::Cancelled(why) => (Status::Cancelled, None, Some(why.as_str())),
    };
    let outcome = Outcome { status, text, tool_calls: &tools, error };
    let closed = match state.db.conn() {
        Ok(conn) => tasks::finish(&conn, &task.id, outcome, now_secs()).await,
        Err(e) => Err(e),
    };
    match closed {
        Ok(_) => tracing::info!(task_id = %task.id, user_id = %task.user_id, status = status.as_str(), "task finished"),
        Err(e) => tracing::error!(task_id = %task.id, error = %e, "recording a task's end failed"),
    }
}

struct AbortOnDrop(tokio::task::AbortHandle);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Keeps the task's runner alive in the database, saves its tool calls, and passes on a cancel
/// asked for through another Roost instance.
async fn heartbeat(state: AppState, id: String, progress: Arc<Mutex<Progress>>, cancel: Arc<Notify>) {
    let mut tick = tokio::time::interval(super::HEARTBEAT);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let tools = progress.lock().expect("progress lock").json();
        let Ok(conn) = state.db.conn() else { continue };
        match tasks::heartbeat(&conn, &id, &state.tasks.runner, now_secs(), &tools).await {
            Ok(true) => cancel.notify_one(),
            Ok(false) => {}
            Err(e) => tracing::warn!(task_id = %id, error = %e, "a task heartbeat failed"),
        }
    }
}

fn timed_out(state: &AppState) -> String {
    format!(
        "The task ran longer than {} seconds, the most a task may run, and was stopped.",
        state.tasks.settings.timeout.as_secs()
    )
}

async fn drive(state: &AppState, task: &Task, progress: &Mutex<Progress>, cancel: &Notify, deadline: Instant) -> End {
    let user = &task.user_id;
    state.machines.activity().touch(user);
    // Spawned: concurrent callers share one start, which must not be dropped half-way.
    let machines = state.machines.clone();
    let waking_user = user.clone();
    let start = tokio::spawn(async move { machines.ensure_ready(&waking_user).await });
    let address = tokio::select! {
        started = start => match started {
            Ok(Ok(address)) => address,
            Ok(Err(e)) => return End::Failed(format!("Your agent could not start: {}", e.message)),
            Err(_) => return End::Failed("Your agent could not start.".into()),
        },
        () = cancel.notified() => return End::Cancelled("Cancelled before it started.".into()),
        () = tokio::time::sleep_until(deadline) => return End::Failed(timed_out(state)),
    };
    let token = crate::agent_credentials::gateway_token(&state.secret, user);
    let agent_secret = state.relays.agent_secret(user);
    let connect = connect_with_retry(&address, &token, state.relays.device(), agent_secret.as_deref(), CONNECT_WITHIN);
    let mut socket = tokio::select! {
        connected = connect => match connected {
            Ok(upstream) => upstream.socket,
            Err(e) => {
                tracing::warn!(task_id = %task.id, error = %e, "a task could not reach its agent");
                return End::Failed("Your agent could not be reached. Try the task again in a minute.".into());
            }
        },
        () = cancel.notified() => return End::Cancelled("Cancelled before it started.".into()),
    };
    let started = match state.db.conn() {
        Ok(conn) => tasks::start(&conn, &task.id, &state.tasks.runner, now_secs()).await,
        Err(e) => Err(e),
    };
    match started {
        Ok(true) => {}
        Ok(false) => return End::Cancelled("Cancelled before it started.".into()),
        Err(e) => {
            tracing::warn!(task_id = %task.id, error = %e, "marking a task running failed");
            return End::Failed("The task could not be started. Try it again.".into());
        }
    }
    state.machines.activity().run_event(user, &task.id, false);
    let send = json!({
        "type": "req", "id": SEND_ID, "method": "chat.send",
        "params": { "sessionKey": task.session_key, "message": task.prompt, "idempotencyKey": task.id },
    });
    if socket.send(Message::text(send.to_string())).await.is_err() {
        return End::Failed(LOST.into());
    }
    let end = follow(state, task, &mut socket, progress, cancel, deadline).await;
    let _ = tokio::time::timeout(Duration::from_secs(2), socket.close(None)).await;
    end
}

const CANCELLED: &str = "Cancelled while it ran.";
/// The agent never answered `chat.abort` with the run's `aborted` event.
const UNCONFIRMED: &str = "Cancelled, but your agent did not confirm that its run stopped.";
const LOST: &str = "The connection to your agent was lost while the task ran.";

/// Why the run is being aborted: the user cancelled, or it ran out of time.
enum Aborting {
    No,
    Cancel(Instant),
    Timeout(Instant),
}

async fn follow(
    state: &AppState,
    task: &Task,
    socket: &mut AgentSocket,
    progress: &Mutex<Progress>,
    cancel: &Notify,
    deadline: Instant,
) -> End {
    let mut aborting = Aborting::No;
    loop {
        let abort_by = match aborting {
            Aborting::No => None,
            Aborting::Cancel(at) | Aborting::Timeout(at) => Some(at),
        };
        let frame = tokio::select! {
            frame = socket.next() => frame,
            () = cancel.notified(), if abort_by.is_none() => {
                abort(socket, task).await;
                aborting = Aborting::Cancel(Instant::now() + ABORT_WAIT);
                continue;
            }
            () = tokio::time::sleep_until(deadline), if abort_by.is_none() => {
                abort(socket, task).await;
                aborting = Aborting::Timeout(Instant::now() + ABORT_WAIT);
                continue;
            }
            () = tokio::time::sleep_until(abort_by.unwrap_or(deadline)), if abort_by.is_some() => {
                return match aborting {
                    Aborting::Timeout(_) => End::Failed(timed_out(state)),
                    _ => End::Cancelled(UNCONFIRMED.into()),
                };
            }
        };
        let text = match frame {
            Some(Ok(Message::Text(text))) => text,
            Some(Ok(Message::Close(_))) | None | Some(Err(_)) => return End::Failed(LOST.into()),
            Some(Ok(_)) => continue,
        };
        let Ok(frame) = serde_json::from_str::<Value>(text.as_str()) else { continue };
        if frame["type"] == "res" && frame["id"] == SEND_ID && frame["ok"] != true {
            let message = frame["error"]["message"].as_str().unwrap_or("the agent refused the prompt");
            return End::Failed(format!("Your agent refused the task: {}", clip(message, MAX_ERROR_CHARS)));
        }
        if frame["type"] != "event" || frame["payload"]["runId"] != task.id.as_str() {
            continue;
        }
        let payload = &frame["payload"];
        state.machines.activity().run_event(&task.user_id, &task.id, false);
        match frame["event"].as_str() {
            Some("agent") if payload["stream"] == "tool" => {
                progress.lock().expect("progress lock").tool_event(&payload["data"]);
            }
            Some("chat") => match payload["state"].as_str() {
                Some("final") => return End::Completed(clip(&reply_text(&payload["message"]), MAX_TEXT_CHARS)),
                Some("error") => {
                    let message = payload["errorMessage"].as_str().unwrap_or("Your agent's run failed.");
                    return End::Failed(clip(message, MAX_ERROR_CHARS));
                }
                Some("aborted") => {
                    return match aborting {
                        Aborting::No => End::Cancelled("The run was stopped on the agent.".into()),
                        _ => ended_by_abort(state, &aborting),
                    };
                }
                _ => {}
            },
            _ => {}
        }
    }
}

fn ended_by_abort(state: &AppState, aborting: &Aborting) -> End {
    match aborting {
        Aborting::Timeout(_) => End::Failed(timed_out(state)),
        _ => End::Cancelled(CANCELLED.into()),
    }
}

async fn abort(socket: &mut AgentSocket, task: &Task) {
    let frame = json!({
        "type": "req", "id": ABORT_ID, "method": "chat.abort",
        "params": { "sessionKey": task.session_key, "runId": task.id },
    });
    let _ = socket.send(Message::text(frame.to_string())).await;
}

/// The text parts of a reply message, joined.
fn reply_text(message: &Value) -> String {
    match &message["content"] {
        Value::String(text) => text.clone(),
        Value::Array(parts) => parts
            .iter()
            .filter(|p| p["type"] == "text")
            .filter_map(|p| p["text"].as_str())
            .collect::<Vec<_>>()
            .join("\n"),
        _ => String::new(),
    }
}

fn clip(text: &str, max: usize) -> String {
    text.chars().take(max).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tool_calls_are_recorded_and_settled_and_bounded() {
        let mut p = Progress::default();
        p.tool_event(&json!({"phase": "start", "name": "exec", "toolCallId": "c1", "args": {"command": "ls"}}));
        p.tool_event(&json!({"phase": "result", "name": "exec", "toolCallId": "c1", "isError": true}));
        let tools: Value = serde_json::from_str(&p.json()).unwrap();
        assert_eq!(tools[0]["name"], "exec");
        assert_eq!(tools[0]["status"], "failed");
        assert_eq!(tools[0]["args"]["command"], "ls");
        for i in 0..200 {
            p.tool_event(&json!({"phase": "start", "toolCallId": format!("x{i}"), "args": "a".repeat(5000)}));
        }
        assert_eq!(p.tools.len(), MAX_TOOL_CALLS);
        assert!(p.tools[1]["args"].as_str().unwrap().chars().count() <= MAX_ARGS_CHARS);
    }

    #[test]
    fn the_reply_text_joins_text_parts() {
        let m = json!({"content": [{"type": "text", "text": "a"}, {"type": "image"}, {"type": "text", "text": "b"}]});
        assert_eq!(reply_text(&m), "a\nb");
    }
}
