//! The host's agent slots, the line for them, and idle stops, with the simulated agent.

use std::time::Duration;

use serde_json::{Value, json};

use crate::helpers::{TestApp, wait_until};
use crate::ws::Client;

fn user(id: &str) -> gateway::domain::UserId {
    gateway::domain::UserId::parse(id).unwrap()
}

async fn machine_row(app: &TestApp, user_id: &str) -> (String, String) {
    let rows = app
        .sql(&format!("SELECT state || '|' || coalesce(detail, '') FROM machines WHERE user_id = '{user_id}'"))
        .await;
    match rows.first() {
        Some(libsql::Value::Text(t)) => {
            let (state, detail) = t.split_once('|').unwrap();
            (state.to_string(), detail.to_string())
        }
        _ => (String::new(), String::new()),
    }
}

/// Reads until a `queued` status whose detail names this place in line.
async fn until_queued(ws: &mut Client, place: &str) -> Value {
    ws.until(place, |f| {
        f["event"] == "roost.status"
            && f["payload"]["stage"] == "queued"
            && f["payload"]["detail"].as_str().is_some_and(|d| d.contains(&format!("{place} in line")))
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn starts_beyond_the_cap_wait_in_line_and_proceed_in_order() {
    let app = TestApp::spawn_with(&["--max-agents", "2", "--no-prewarm"]).await;
    let mut cookies = Vec::new();
    for i in 0..4 {
        cookies.push(app.signed_up_cookie(&format!("line{i}@example.com")).await);
    }
    let mut first = app.ws(&cookies[0].0, "").await;
    first.ready().await;
    let mut second = app.ws(&cookies[1].0, "").await;
    second.ready().await;
    let mut third = app.ws(&cookies[2].0, "").await;
    until_queued(&mut third, "1st").await;
    let mut fourth = app.ws(&cookies[3].0, "").await;
    until_queued(&mut fourth, "2nd").await;
    assert_eq!(app.state.machines.slots().running().len(), 2, "never more agents than the cap");

    // The first user leaves: their idle agent makes room, and the line moves on in order.
    drop(first);
    third.ready().await;
    until_queued(&mut fourth, "1st").await;
    let (state, detail) = machine_row(&app, &cookies[0].1).await;
    assert_eq!(state, "idle_stopped");
    assert!(detail.contains("make room"), "{detail}");
    drop(second);
    fourth.ready().await;
    assert!(!fourth.chat("main", "my turn").await.is_empty());
    assert_eq!(app.state.machines.slots().running().len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prewarm_never_starts_an_agent_beyond_the_cap() {
    let app = TestApp::spawn_with(&["--max-agents", "1"]).await;
    let (_, first) = app.signed_up_cookie("warm1@example.com").await;
    wait_until("the first user's agent is prewarmed", || async {
        app.state.machines.address_if_ready(&user(&first)).await.is_some()
    })
    .await;
    let (cookie, second) = app.signed_up_cookie("warm2@example.com").await;
    assert!(!app.state.machines.slots().holds(&user(&second)), "no slot taken for a prewarm");
    assert_eq!(app.state.machines.slots().running(), vec![user(&first)]);
    // Opening the chat is a real start: it waits its turn like any other.
    let mut ws = app.ws(&cookie, "").await;
    until_queued(&mut ws, "1st").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unused_agent_stops_after_the_idle_timeout_and_the_next_chat_wakes_it() {
    let app = TestApp::spawn_with(&["--agent-idle-timeout", "1s", "--no-prewarm"]).await;
    let (cookie, user_id) = app.signed_up_cookie("idle@example.com").await;
    let mut ws = app.ws(&cookie, "").await;
    ws.ready().await;
    let reply = ws.chat("main", "before the nap").await;
    // While the chat is open, the agent is in use however long it stays quiet.
    let held = app.state.machines.slots().running();
    drop(ws);
    wait_until("the idle agent is stopped", || async { machine_row(&app, &user_id).await.0 == "idle_stopped" }).await;
    assert_eq!(held, vec![user(&user_id)]);
    assert_eq!(machine_row(&app, &user_id).await.1, "stopped after 1 s idle");
    assert!(app.state.machines.slots().running().is_empty(), "its slot is free");

    let mut ws = app.ws(&cookie, "").await;
    let stages = ws.stages_until_ready().await;
    assert!(stages.iter().any(|s| s == "starting"), "waking shows its stages: {stages:?}");
    let history: Value = app.json_as(&cookie, "/api/sessions/main/history").await;
    let texts: Vec<&str> = history["messages"].as_array().unwrap().iter().filter_map(|m| m["text"].as_str()).collect();
    assert!(texts.contains(&"before the nap") && texts.contains(&reply.as_str()), "history survived: {texts:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_is_not_stopped_while_its_model_call_is_in_flight() {
    let llm =
        fakes::llm::FakeLlm::spawn(fakes::llm::FakeLlmOptions { api_key: "sk-op".into(), ..Default::default() }).await;
    let base = format!("{}/v1", llm.base_url());
    let app = TestApp::spawn_with(&[
        "--agent-idle-timeout",
        "1s",
        "--no-prewarm",
        "--llm-openai-base-url",
        &base,
        "--llm-openai-api-key",
        "sk-op",
        "--llm-model",
        "m",
    ])
    .await;
    let (cookie, user_id) = app.signed_up_cookie("busy@example.com").await;
    let mut ws = app.ws(&cookie, "").await;
    ws.ready().await;
    llm.fail_next(fakes::llm::FailMode::Hang);
    let credential = gateway::agent_credentials::llm_credential(&app.state.secret, &user(&user_id));
    let url = app.url("/llm/openai/v1/chat/completions");
    let call = tokio::spawn(async move {
        reqwest::Client::new()
            .post(url)
            .bearer_auth(credential)
            .json(&json!({ "model": "m", "messages": [{ "role": "user", "content": "think hard" }] }))
            .send()
            .await
    });
    wait_until("the model call is in flight", || async { app.state.machines.activity().is_busy(&user(&user_id)) })
        .await;
    drop(ws);
    // Several idle timeouts pass with no chat open: the call keeps the agent in use.
    for _ in 0..6 {
        tokio::time::sleep(Duration::from_millis(500)).await;
        assert_eq!(machine_row(&app, &user_id).await.0, "ready", "stopped during a model call");
    }
    llm.shutdown();
    let _ = call.await;
    wait_until("the agent stops once the call ended", || async {
        machine_row(&app, &user_id).await.0 == "idle_stopped"
    })
    .await;
}

/// A new user whose simulated agent runs a Telegram bot, started by one chat that then closed.
async fn started_with_a_bot(
    app: &TestApp,
    email: &str,
) -> (String, String, std::sync::Arc<gateway::machines::simulated::SimulatedProvider>) {
    let (cookie, user_id) = app.signed_up_cookie(email).await;
    let simulated = app.state.machines.simulated().expect("the simulated provider").clone();
    simulated.set_channel(&user_id, "telegram", true).await;
    let mut ws = app.ws(&cookie, "").await;
    ws.ready().await;
    drop(ws);
    (cookie, user_id, simulated)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_with_a_live_channel_is_never_stopped_for_idleness() {
    let app = TestApp::spawn_with(&["--agent-idle-timeout", "1s", "--no-prewarm"]).await;
    let (cookie, user_id, simulated) = started_with_a_bot(&app, "bot-owner@example.com").await;
    // Several idle timeouts pass with no chat open: the Telegram bot keeps the agent on.
    for _ in 0..6 {
        tokio::time::sleep(Duration::from_millis(500)).await;
        assert_eq!(machine_row(&app, &user_id).await.0, "ready", "stopped while its bot was connected");
    }
    // An agent that cannot say (restarting its gateway, or too busy to answer) is asked again
    // next round, not stopped mid-reply: rounds are a second apart, and the third goes ahead.
    simulated.set_channels_unavailable(&user_id, true).await;
    let unanswered = std::time::Instant::now();
    while unanswered.elapsed() < Duration::from_millis(1800) {
        assert_eq!(machine_row(&app, &user_id).await.0, "ready", "stopped when it did not say");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    wait_until("an agent that keeps not saying is stopped", || async {
        machine_row(&app, &user_id).await.0 == "idle_stopped"
    })
    .await;
    simulated.set_channels_unavailable(&user_id, false).await;
    let mut ws = app.ws(&cookie, "").await;
    ws.ready().await;
    drop(ws);
    simulated.set_channel(&user_id, "telegram", false).await;
    wait_until("the agent stops once its bot is disconnected", || async {
        machine_row(&app, &user_id).await == ("idle_stopped".to_string(), "stopped after 1 s idle".to_string())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bot_keeps_its_agent_on_only_while_the_plan_includes_bots() {
    // The only plan here has no `channels`: a bot still on the agent (the plan was downgraded
    // after it was connected) does not keep the agent running.
    let dir = tempfile::tempdir().unwrap();
    let plans = crate::helpers::plans_file(dir.path(), 100, "m");
    let app =
        TestApp::spawn_with(&["--agent-idle-timeout", "1s", "--no-prewarm", "--plans", &plans, "--llm-model", "m"])
            .await;
    let (_, user_id, _) = started_with_a_bot(&app, "downgraded@example.com").await;
    wait_until("the agent stops for idleness despite its bot", || async {
        machine_row(&app, &user_id).await == ("idle_stopped".to_string(), "stopped after 1 s idle".to_string())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_machine_api_shows_the_state_and_stops_and_restarts_the_agent() {
    let app = TestApp::spawn_with(&["--max-agents", "3", "--agent-idle-timeout", "45m", "--no-prewarm"]).await;
    let (cookie, user_id) = app.signed_up_cookie("machine@example.com").await;
    let before: Value = app.json_as(&cookie, "/api/machine").await;
    assert_eq!((before["state"].as_str(), before["in_use"].as_bool()), (Some("idle_stopped"), Some(false)));
    let mut ws = app.ws(&cookie, "").await;
    ws.ready().await;
    wait_until("the row says ready", || async { machine_row(&app, &user_id).await.0 == "ready" }).await;
    let up: Value = app.json_as(&cookie, "/api/machine").await;
    assert_eq!(up["state"], "ready");
    assert_eq!(up["in_use"], true, "a chat is open");
    assert_eq!(up["idle_policy"]["stop_after_secs"], 2700);
    assert_eq!(up["slots"]["max"], 3);
    drop(ws);

    let res = app.send_as(&cookie, reqwest::Method::POST, "/api/machine/stop", None).await;
    assert_eq!(res.status(), 204);
    wait_until("stopped", || async {
        machine_row(&app, &user_id).await == ("idle_stopped".into(), "stopped by you".into())
    })
    .await;
    assert!(app.state.machines.slots().running().is_empty());
    let res = app.send_as(&cookie, reqwest::Method::POST, "/api/machine/restart", None).await;
    assert_eq!(res.status(), 202);
    wait_until("restarted", || async { machine_row(&app, &user_id).await.0 == "ready" }).await;
    // Only the owner's session reaches it: no session, no machine.
    let anonymous = reqwest::Client::new().get(app.url("/api/machine")).send().await.unwrap();
    assert_eq!(anonymous.status(), 401);
}

/// A user's Stop reaches every tab: each of their sockets closes with 4100, so no page
/// reconnects (which would start the agent again); another user's socket stays open.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stopping_the_agent_closes_every_tab_of_the_user_so_none_restarts_it() {
    let app = TestApp::spawn_with(&["--no-prewarm"]).await;
    let (cookie, user_id) = app.signed_up_cookie("two-tabs@example.com").await;
    let (other, _) = app.signed_up_cookie("bystander@example.com").await;
    let (mut tab_a, mut tab_b, mut theirs) =
        (app.ws(&cookie, "").await, app.ws(&cookie, "").await, app.ws(&other, "").await);
    for ws in [&mut tab_a, &mut tab_b, &mut theirs] {
        ws.ready().await;
    }
    let res = app.send_as(&cookie, reqwest::Method::POST, "/api/machine/stop", None).await;
    assert_eq!(res.status(), 204);
    for tab in [&mut tab_a, &mut tab_b] {
        assert_eq!(tab.closed().await, (4100, "your agent was stopped".to_string()));
    }
    wait_until("the row says stopped by you", || async {
        machine_row(&app, &user_id).await == ("idle_stopped".into(), "stopped by you".into())
    })
    .await;
    let user = user(&user_id);
    assert!(
        !app.state.machines.is_up(&user).await && !app.state.machines.is_starting(&user),
        "nothing started it again"
    );
    theirs.request("still", "sessions.list", json!({})).await;
    theirs.until("their answer", |f| f["type"] == "res" && f["id"] == "still").await;
    // Opening the chat again (the page's Restart, or a new visit) wakes it as any sleeping agent.
    let mut again = app.ws(&cookie, "").await;
    again.ready().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn at_start_a_row_that_says_running_with_nothing_behind_it_becomes_stopped() {
    let app = TestApp::spawn_with(&["--no-prewarm"]).await;
    let (cookie, user_id) = app.signed_up_cookie("ghost@example.com").await;
    let mut ws = app.ws(&cookie, "").await;
    ws.ready().await;
    drop(ws);
    wait_until("the row says ready", || async { machine_row(&app, &user_id).await.0 == "ready" }).await;
    // Roost stops without stopping the agent's row (as a crash would leave it)…
    let app = app.restart().await;
    // …and the new process, which runs no agent for this user, corrects it before serving.
    assert_eq!(
        machine_row(&app, &user_id).await,
        ("idle_stopped".to_string(), "stopped: Roost restarted while it was running".to_string())
    );
    let machine = app.json_as(&cookie, "/api/machine").await;
    assert_eq!(machine["history"][0]["reason"], "stopped: Roost restarted while it was running", "{machine}");
    let mut ws = app.ws(&cookie, "").await;
    ws.ready().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_agent_frees_its_slot_stays_failed_and_restart_brings_it_back() {
    let app = TestApp::spawn_with(&["--agent-idle-timeout", "4s", "--no-prewarm"]).await;
    let (cookie, user_id) = app.signed_up_cookie("crashy@example.com").await;
    let mut ws = app.ws(&cookie, "").await;
    ws.ready().await;
    // What the local provider reports at the end of a crash loop.
    let reason = "your agent crashed 5 times in 10 minutes (last: exit code 1); it was stopped";
    app.state.machines.simulated().unwrap().fail(&user_id, reason).await;
    wait_until("the watcher frees the failed agent's slot", || async {
        app.state.machines.slots().running().is_empty()
    })
    .await;
    drop(ws);

    // A page opened now is told why, and the agent is not started behind the user's back.
    let mut ws = app.ws(&cookie, "").await;
    let status = ws.until("the failed status", |f| f["event"] == "roost.status").await;
    assert_eq!(
        (status["payload"]["stage"].as_str(), status["payload"]["detail"].as_str()),
        (Some("failed"), Some(reason))
    );
    let error = ws.until_event("roost.error").await;
    assert_eq!(error["payload"]["code"], "agent_failed");
    assert!(error["payload"]["message"].as_str().unwrap().starts_with("Your agent crashed 5 times"), "{error}");
    ws.closed().await;
    wait_until("the row says failed", || async {
        machine_row(&app, &user_id).await == ("failed".into(), reason.into())
    })
    .await;
    let machine: Value = app.json_as(&cookie, "/api/machine").await;
    assert_eq!((machine["state"].as_str(), machine["memory_bytes"].as_u64()), (Some("failed"), None));
    assert!(app.state.machines.slots().running().is_empty(), "no slot taken for a failed agent");

    let res = app.send_as(&cookie, reqwest::Method::POST, "/api/machine/restart", None).await;
    assert_eq!(res.status(), 202);
    let mut ws = app.ws(&cookie, "").await;
    ws.ready().await;
    assert!(!ws.chat("main", "back again").await.is_empty());
    assert_eq!(machine_row(&app, &user_id).await.0, "ready");
}
