//! Issue 13 items 1–5 against the real OpenClaw agent, in Chromium: sends are never lost or
//! doubled, the connection indicator notices a dead link, a stopped reply stays marked, every
//! tab shows the same chat, and a tool call the (fake) model asks for shows as a card, live and
//! after a reload.

use fakes::llm::ToolCall;
use serde_json::json;

use crate::browser::run_spec_at;
use crate::e2e_openclaw::{READY_WAIT, agent_slot, available, start_with};

/// A real agent's replies take seconds, more on a busy machine.
const WAIT: (&str, &str) = ("WAIT_MS", "60000");

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn e2e_the_chat_page_keeps_its_promises_and_shows_tool_cards_with_a_real_agent_in_chromium() {
    if !available() {
        return;
    }
    let _slot =
        agent_slot("e2e_the_chat_page_keeps_its_promises_and_shows_tool_cards_with_a_real_agent_in_chromium").await;
    // Pings every second, so a silenced link is noticed within a few.
    let server = tokio::task::spawn_blocking(|| start_with(true, &["--browser-ping-secs", "1"])).await.unwrap();
    let app = &server.app;
    let email = "real-trust@example.com";
    let (cookie, _) = app.signed_up_cookie(email).await;
    let mut ws = app.ws(&cookie, "").await;
    ws.wait = READY_WAIT;
    tokio::time::timeout(READY_WAIT, ws.until_event("roost.ready")).await.expect("the agent is ready in time");
    drop(ws);

    // Long enough (120 ms a chunk) to be stopped while it streams.
    let reply = (1..=30).map(|i| format!("word{i}")).collect::<Vec<_>>().join(" ");
    server.llm.set_reply(Some(reply));
    let origin = app.origin.clone();
    tokio::task::spawn_blocking(move || {
        let env =
            [("EMAIL", email), ("PASSWORD", crate::helpers::PASSWORD), ("SCREENSHOT_PREFIX", "real-agent-"), WAIT];
        run_spec_at(&origin, "trust.spec.mjs", &env)
    })
    .await
    .unwrap();

    // The model asks for one command; the agent runs it in its sandbox and answers.
    server.llm.set_reply(Some("The command printed its greeting.".into()));
    server.llm.call_tools([ToolCall {
        id: "call01tool".into(),
        name: "exec".into(),
        arguments: json!({ "command": "echo tool-ok-$((40 + 2))" }),
    }]);
    let origin = app.origin.clone();
    tokio::task::spawn_blocking(move || {
        run_spec_at(
            &origin,
            "tools.spec.mjs",
            &[
                ("EMAIL", email),
                ("PASSWORD", crate::helpers::PASSWORD),
                ("EXPECT_ARGS", "command: echo tool-ok-$((40 + 2))"),
                ("EXPECT_RESULT", "tool-ok-42"),
                ("EXPECT_REPLY", "The command printed its greeting."),
                WAIT,
            ],
        )
    })
    .await
    .unwrap();
    let results = server.llm.tool_results();
    assert!(
        results.iter().any(|(id, text)| id == "call01tool" && text.contains("tool-ok-42")),
        "the real agent ran the tool: {results:?}"
    );
    tokio::task::spawn_blocking(move || server.stop()).await.unwrap();
}
