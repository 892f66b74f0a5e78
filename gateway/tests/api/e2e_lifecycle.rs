//! The real OpenClaw agent through an idle stop and a wake: its process ends, its slot is
//! freed, the next chat starts it again with real stages, and its history is intact.

use std::time::{Duration, Instant};

use serde_json::Value;

use crate::e2e_openclaw::{READY_WAIT, REPLY_PREFIX, agent_slot, available, start_with};
use crate::helpers::wait_until_within;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_real_agent_stops_when_idle_and_wakes_with_its_history() {
    if !available() {
        return;
    }
    let _slot = agent_slot("a_real_agent_stops_when_idle_and_wakes_with_its_history").await;
    let server = tokio::task::spawn_blocking(|| start_with(true, &["--agent-idle-timeout", "3s"])).await.unwrap();
    let app = &server.app;
    let (cookie, user_id) = app.signed_up_cookie("napper@example.com").await;
    let mut ws = app.ws(&cookie, "").await;
    ws.wait = READY_WAIT;
    ws.ready().await;
    ws.wait = Duration::from_secs(120);
    let reply = ws.chat("main", "remember the nap").await;
    assert!(reply.starts_with(REPLY_PREFIX), "{reply}");
    let pid: u32 = match &app.sql(&format!("SELECT external_id FROM machines WHERE user_id = '{user_id}'")).await[0] {
        libsql::Value::Text(pid) => pid.parse().unwrap(),
        other => panic!("{other:?}"),
    };
    drop(ws);

    let sql = format!("SELECT state || '|' || detail FROM machines WHERE user_id = '{user_id}'");
    wait_until_within("the idle agent is stopped", Duration::from_secs(90), || async {
        matches!(&app.sql(&sql).await[0], libsql::Value::Text(t) if t == "idle_stopped|stopped after 3 s idle")
    })
    .await;
    assert!(!std::path::Path::new(&format!("/proc/{pid}")).exists(), "the agent's process is gone");
    assert!(app.state.machines.slots().running().is_empty(), "its slot is free");

    let woke = Instant::now();
    let mut ws = app.ws(&cookie, "").await;
    ws.wait = READY_WAIT;
    let stages = ws.stages_until_ready().await;
    let wake = woke.elapsed();
    assert!(stages.iter().any(|s| s == "waiting_ready"), "the wake shows real stages: {stages:?}");
    // The page shows the cache at once; the woken agent's own transcript follows when it answers.
    let cached: Value = app.json_as(&cookie, "/api/sessions/main/history").await;
    assert!(cached["messages"].to_string().contains("remember the nap"), "the cache bridges the wake: {cached}");
    let deadline = Instant::now() + Duration::from_secs(60);
    let history = loop {
        let history: Value = app.json_as(&cookie, "/api/sessions/main/history").await;
        if history["stale"] == false {
            break history;
        }
        assert!(Instant::now() < deadline, "the woken agent answered for its history: {history}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    let texts: Vec<&str> = history["messages"].as_array().unwrap().iter().filter_map(|m| m["text"].as_str()).collect();
    assert!(texts.contains(&"remember the nap") && texts.contains(&reply.as_str()), "history intact: {texts:?}");
    eprintln!("e2e: a real agent woke from idle_stopped to ready in {:.1} s", wake.as_secs_f64());
    drop(ws);
    server.stop();
}
