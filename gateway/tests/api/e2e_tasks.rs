//! The task API against the real OpenClaw agent, with the fake LLM behind Roost's proxy: a task
//! wakes the agent and goes queued → running → completed with the model's text, its tool call
//! and its credits; a task is cancelled while its model call hangs; and a task running when
//! Roost restarts is failed with a sentence, after which the next task runs on a woken agent.

use std::time::Duration;

use fakes::llm::{FailMode, ToolCall};
use serde_json::json;

use crate::e2e_openclaw::{REPLY_PREFIX, agent_slot, available, start_with};
use crate::helpers::wait_until_within;
use crate::tasks::{finished, scripter, submitted, task};

const TURN: Duration = Duration::from_secs(180);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn e2e_tasks_run_on_a_real_agent_cancel_mid_run_and_fail_clearly_across_a_restart() {
    if !available() {
        return;
    }
    let _slot = agent_slot("e2e_tasks_run_on_a_real_agent_cancel_mid_run_and_fail_clearly_across_a_restart").await;
    let dir = tempfile::tempdir().unwrap();
    let plans = crate::helpers::plans_file(dir.path(), 10_000_000, "fake-model");
    let server = tokio::task::spawn_blocking(move || start_with(true, &["--plans", &plans])).await.unwrap();
    let me = scripter(&server.app, "tasks-e2e@example.com").await;

    // 1. queued (the agent is not running: it is woken) → running → completed.
    server.llm.call_tools([ToolCall {
        id: "call01x".into(),
        name: "write".into(),
        arguments: json!({ "path": "task-note.txt", "content": "from a task" }),
    }]);
    let id = submitted(&server.app, &me.token, &json!({"prompt": "write a note, then say hello"})).await;
    let mut seen = vec!["queued".to_string()];
    let done = loop {
        let now = task(&server.app, &me.token, &id).await;
        let status = now["status"].as_str().unwrap().to_string();
        if seen.last() != Some(&status) {
            seen.push(status.clone());
        }
        if ["completed", "failed", "cancelled"].contains(&status.as_str()) {
            break now;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(seen, ["queued", "running", "completed"], "{done}");
    assert!(done["text"].as_str().unwrap().starts_with(REPLY_PREFIX), "{done}");
    assert_eq!(done["tool_calls"][0]["name"], "write", "{done}");
    assert_eq!(done["tool_calls"][0]["status"], "ok", "{done}");
    let expected = server.app.sql("SELECT coalesce(sum(credits), 0) FROM usage_events").await;
    let libsql::Value::Integer(expected) = expected[0] else { panic!("{expected:?}") };
    assert!(expected > 0, "the model calls were debited");
    wait_until_within("the task's credits are its model calls'", Duration::from_secs(15), || async {
        task(&server.app, &me.token, &id).await["credits_used"] == expected
    })
    .await;

    // 2. Cancelled while its model call hangs: `chat.abort` ends the run on the agent.
    let calls = server.llm.requests().len();
    server.llm.fail_next(FailMode::Hang);
    let id = submitted(&server.app, &me.token, &json!({"prompt": "this one hangs"})).await;
    wait_until_within("the model call is in flight", TURN, || async { server.llm.requests().len() > calls }).await;
    assert_eq!(task(&server.app, &me.token, &id).await["status"], "running");
    let res = reqwest::Client::new()
        .post(server.app.url(&format!("/api/v1/tasks/{id}/cancel")))
        .bearer_auth(&me.token)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 202);
    let cancelled = finished(&server.app, &me.token, &id, Duration::from_secs(60)).await;
    assert_eq!(cancelled["status"], "cancelled", "{cancelled}");
    assert_eq!(cancelled["error"], "Cancelled while it ran.", "the agent confirmed the abort: {cancelled}");

    // 3. Roost restarts while a task runs: that task is failed with a sentence, not left running.
    let calls = server.llm.requests().len();
    server.llm.fail_next(FailMode::Hang);
    let id = submitted(&server.app, &me.token, &json!({"prompt": "interrupted by a restart"})).await;
    wait_until_within("the model call is in flight", TURN, || async { server.llm.requests().len() > calls }).await;
    let server = tokio::task::spawn_blocking(move || server.restart()).await.unwrap();
    let interrupted = finished(&server.app, &me.token, &id, Duration::from_secs(30)).await;
    assert_eq!(interrupted["status"], "failed", "{interrupted}");
    assert_eq!(interrupted["error"], gateway::tasks::RESTARTED);
    // The token still works, and the next task wakes the agent again.
    let id = submitted(&server.app, &me.token, &json!({"prompt": "after the restart"})).await;
    let done = finished(&server.app, &me.token, &id, TURN + TURN).await;
    assert_eq!(done["status"], "completed", "{done}");
    assert!(done["text"].as_str().unwrap().starts_with(REPLY_PREFIX), "{done}");
    server.stop();
}
