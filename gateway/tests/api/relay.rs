//! `/ws` against the in-process fake agent (which speaks the real OpenClaw frames).

use fakes::openclaw::{FakeOpenClaw, FakeOpenClawOptions};
use gateway::machines::simulated::{Reply, SimulatedAgent};
use serde_json::{Value, json};

use crate::helpers::{TestApp, error_code, wait_until};
use crate::ws::Client;

async fn agent_of(app: &TestApp, user_id: &str) -> std::sync::Arc<SimulatedAgent> {
    app.state.machines.simulated().expect("simulated provider").agent(user_id).await.expect("agent running")
}

#[tokio::test]
async fn a_new_user_sees_real_stages_then_ready_then_a_streamed_reply() {
    // Without prewarm, the socket is what starts the agent, so it sees every stage.
    let app = TestApp::spawn_with(&["--no-prewarm"]).await;
    let (cookie, _) = app.signed_up_cookie("chat@example.com").await;
    let mut ws = app.ws(&cookie, "").await;
    let mut stages = Vec::new();
    let ready = loop {
        let frame = ws.next().await.expect("frames before ready");
        match frame["event"].as_str() {
            Some("roost.status") => stages.push(frame["payload"]["stage"].as_str().unwrap().to_string()),
            Some("roost.ready") => break frame,
            other => panic!("unexpected frame before ready: {other:?}"),
        }
    };
    for stage in ["preparing_state", "starting", "waiting_ready"] {
        assert!(stages.iter().any(|s| s == stage), "stage {stage} missing from {stages:?}");
    }
    assert_eq!(ready["payload"]["sessionDefaults"]["mainSessionKey"], "agent:main:main");

    ws.request("my-id-1", "chat.send", json!({ "sessionKey": "main", "message": "hello", "idempotencyKey": "run-1" }))
        .await;
    let ack = ws.until("ack", |f| f["type"] == "res").await;
    assert_eq!(ack["id"], "my-id-1", "the browser's own request id comes back");
    assert_eq!(ack["payload"]["runId"], "run-1");
    let mut deltas = 0;
    let mut last_seq = 0;
    let final_text = loop {
        let frame = ws.next().await.unwrap();
        if frame["event"] != "chat" {
            continue;
        }
        let seq = frame["roostSeq"].as_u64().expect("relayed events carry roostSeq");
        assert!(seq > last_seq, "roostSeq increases");
        last_seq = seq;
        match frame["payload"]["state"].as_str() {
            Some("delta") => deltas += 1,
            Some("final") => break frame["payload"]["message"]["content"][0]["text"].as_str().unwrap().to_string(),
            _ => {}
        }
    };
    assert!(deltas >= 3, "the reply streams in pieces ({deltas} deltas)");
    assert!(final_text.starts_with("Hello from your simulated agent"));

    let row = app.sql("SELECT state FROM machines").await;
    assert!(matches!(&row[0], libsql::Value::Text(s) if s == "ready"), "machine row: {row:?}");
}

#[tokio::test]
async fn dropping_mid_reply_and_resuming_loses_nothing() {
    let app = TestApp::spawn().await;
    let (cookie, _) = app.signed_up_cookie("resume@example.com").await;
    let mut ws = app.ws(&cookie, "").await;
    let epoch = ws.ready().await["payload"]["epoch"].as_str().unwrap().to_string();
    ws.request("r", "chat.send", json!({ "sessionKey": "main", "message": "tell me", "idempotencyKey": "run-r" }))
        .await;
    let first = ws.until("first delta", |f| f["event"] == "chat" && f["payload"]["state"] == "delta").await;
    let seen = first["roostSeq"].as_u64().unwrap();
    drop(ws);

    let mut ws = app.ws(&cookie, &format!("?resume={epoch}:{seen}")).await;
    ws.ready().await;
    let mut seqs = vec![seen];
    let mut text = first["payload"]["deltaText"].as_str().unwrap().to_string();
    loop {
        let frame = ws.next().await.unwrap();
        let Some(seq) = frame["roostSeq"].as_u64() else { continue };
        assert_eq!(seq, seqs.last().unwrap() + 1, "no event lost or repeated");
        seqs.push(seq);
        if frame["event"] == "chat" {
            match frame["payload"]["state"].as_str() {
                Some("delta") => text.push_str(frame["payload"]["deltaText"].as_str().unwrap()),
                Some("final") => {
                    assert_eq!(frame["payload"]["message"]["content"][0]["text"].as_str().unwrap(), text);
                    break;
                }
                _ => {}
            }
        }
    }
}

#[tokio::test]
async fn resuming_from_an_unknown_point_reports_a_gap() {
    let app = TestApp::spawn().await;
    let (cookie, _) = app.signed_up_cookie("gap@example.com").await;
    let mut ws = app.ws(&cookie, "?resume=999999").await;
    ws.ready().await;
    let gap = ws.until_event("roost.gap").await;
    assert!(gap["payload"]["lastSeq"].is_u64());
}

#[tokio::test]
async fn forbidden_methods_are_answered_by_roost_and_never_reach_the_agent() {
    let agent = FakeOpenClaw::spawn(FakeOpenClawOptions { any_token: true, ..FakeOpenClawOptions::default() }).await;
    let app = TestApp::spawn_with(&["--fake-agent-url", &agent.ws_url()]).await;
    let (cookie, _) = app.signed_up_cookie("forbid@example.com").await;
    let mut ws = app.ws(&cookie, "").await;
    ws.ready().await;
    for method in ["config.patch", "config.get", "device.pair.approve", "channels.pairing.approve", "connect"] {
        ws.request("x1", method, json!({})).await;
        let res = ws.until("refusal", |f| f["type"] == "res").await;
        assert_eq!(res["ok"], false);
        assert_eq!(res["error"]["code"], "forbidden", "{method}");
        assert_eq!(res["id"], "x1");
    }
    ws.send(json!({ "type": "event", "id": "e1", "event": "chat" })).await;
    assert_eq!(ws.until("invalid", |f| f["type"] == "res").await["error"]["code"], "invalid_request");
    ws.send_raw("{not json".into()).await;
    assert_eq!(ws.until_event("roost.error").await["payload"]["code"], "invalid_frame");
    let seen: Vec<String> = agent.requests_seen().into_iter().map(|(m, _)| m).collect();
    assert!(
        seen.iter().all(|m| m == "connect" || m == "chat.history" || m.starts_with("sessions.")),
        "agent saw {seen:?}"
    );
    assert!(!seen.iter().any(|m| m.starts_with("config.") || m.starts_with("device.")));
}

#[tokio::test]
async fn oversize_frames_close_the_socket_with_1009() {
    let app = TestApp::spawn().await;
    let (cookie, _) = app.signed_up_cookie("big@example.com").await;
    let mut ws = app.ws(&cookie, "").await;
    ws.ready().await;
    let huge = json!({ "type": "req", "id": "big", "method": "chat.send", "params": { "sessionKey": "main", "message": "x".repeat(5 * 1024 * 1024), "idempotencyKey": "big" } });
    ws.send_raw(huge.to_string()).await;
    assert_eq!(ws.closed().await.0, 1009);
}

#[tokio::test]
async fn sockets_need_a_session_and_an_allowed_origin() {
    let app = TestApp::spawn().await;
    let url = format!("ws://{}/ws", app.addr);
    let err = Client::connect(&url, &[("origin", &app.origin)]).await.err().expect("refused");
    assert!(err.to_string().contains("401"), "{err}");
    let (cookie, _) = app.signed_up_cookie("origin@example.com").await;
    let err =
        Client::connect(&url, &[("cookie", &cookie), ("origin", "https://evil.example")]).await.err().expect("refused");
    assert!(err.to_string().contains("403"), "{err}");
    let res = reqwest::Client::new().get(app.url("/ws")).header("cookie", &cookie).send().await.unwrap();
    assert_eq!(error_code(res).await.0, 400, "a plain GET without an upgrade is a clear 4xx");
}

#[tokio::test]
async fn api_tokens_open_sockets_without_an_origin() {
    let app = TestApp::spawn().await;
    let (client, _) = app.signed_up_user("apiws@example.com").await;
    let token = app.create_token(&client, "bot").await;
    let bearer = format!("Bearer {}", token["token"].as_str().unwrap());
    let mut ws = Client::connect(&format!("ws://{}/ws", app.addr), &[("authorization", &bearer)]).await.unwrap();
    ws.ready().await;
    assert!(ws.chat("main", "hi").await.starts_with("Hello"));
}

#[tokio::test]
async fn users_only_ever_see_their_own_agent() {
    let app = TestApp::spawn().await;
    let (alice_cookie, alice_id) = app.signed_up_cookie("alice@example.com").await;
    let (bob_cookie, bob_id) = app.signed_up_cookie("bob@example.com").await;
    let mut alice = app.ws(&alice_cookie, "").await;
    alice.ready().await;
    let mut bob = app.ws(&bob_cookie, "").await;
    bob.ready().await;
    agent_of(&app, &bob_id).await.set_reply(Reply::Text("bob-only-secret-reply".into()));
    bob.chat("main", "bob-only-secret-question").await;
    alice.chat("main", "hello").await;
    assert!(!alice.all_bytes().contains("bob-only"), "alice's socket never carries bob's events");
    assert_ne!(agent_of(&app, &alice_id).await.addr(), agent_of(&app, &bob_id).await.addr());

    let history: Value = app.json_as(&alice_cookie, "/api/sessions/main/history").await;
    assert!(!history.to_string().contains("bob-only"), "alice's history has none of bob's messages");
    let bob_history: Value = app.json_as(&bob_cookie, "/api/sessions/main/history").await;
    assert!(bob_history.to_string().contains("bob-only-secret-question"));
}

#[tokio::test]
async fn no_internal_credential_ever_reaches_the_browser() {
    let app = TestApp::spawn().await;
    let (cookie, user_id) = app.signed_up_cookie("leak@example.com").await;
    let user = gateway::domain::UserId::parse(&user_id).unwrap();
    let gateway_token = gateway::agent_credentials::gateway_token(&app.state.secret, &user);
    let llm_credential = gateway::agent_credentials::llm_credential(&app.state.secret, &user);
    let mut ws = app.ws(&cookie, "").await;
    ws.ready().await;
    ws.chat("main", "hello").await;
    ws.request("h", "chat.history", json!({ "sessionKey": "main" })).await;
    ws.until("history", |f| f["id"] == "h").await;
    ws.request("s", "sessions.list", json!({})).await;
    ws.until("sessions", |f| f["id"] == "s").await;
    let http = reqwest::Client::new();
    let mut seen = ws.all_bytes();
    for path in ["/api/me", "/api/sessions", "/api/sessions/main/history"] {
        seen.push_str(&http.get(app.url(path)).header("cookie", &cookie).send().await.unwrap().text().await.unwrap());
    }
    assert!(seen.contains("Hello from your simulated agent"), "the scan covered real traffic");
    for secret in [gateway_token.as_str(), llm_credential.as_str(), "fake-device-token", "deviceToken"] {
        assert!(!seen.contains(secret), "a browser received {secret}");
    }
}

#[tokio::test]
async fn an_agent_policy_change_closes_with_a_clear_reason_and_reconnect_works() {
    let app = TestApp::spawn().await;
    let (cookie, user_id) = app.signed_up_cookie("policy@example.com").await;
    let mut ws = app.ws(&cookie, "").await;
    ws.ready().await;
    agent_of(&app, &user_id).await.close_all(4001, "gateway auth changed");
    let (code, reason) = ws.closed().await;
    assert_eq!(code, 1012);
    assert!(reason.contains("configuration changed"), "{reason}");
    let mut ws = app.ws(&cookie, "").await;
    ws.ready().await;
    assert!(ws.chat("main", "still there?").await.starts_with("Hello"));
}

#[tokio::test]
async fn a_vanished_agent_link_is_reported_not_hung() {
    let app = TestApp::spawn().await;
    let (cookie, user_id) = app.signed_up_cookie("vanish@example.com").await;
    let mut ws = app.ws(&cookie, "").await;
    ws.ready().await;
    agent_of(&app, &user_id).await.drop_all();
    let (code, reason) = ws.closed().await;
    assert_eq!(code, 1011);
    assert!(reason.contains("lost"), "{reason}");
}

#[tokio::test]
async fn two_tabs_share_one_agent_link_and_both_see_the_reply() {
    let app = TestApp::spawn().await;
    let (cookie, user_id) = app.signed_up_cookie("tabs@example.com").await;
    let mut one = app.ws(&cookie, "").await;
    one.ready().await;
    let mut two = app.ws(&cookie, "").await;
    two.ready().await;
    let reply = one.chat("main", "hi").await;
    let seen = two.until("final in the other tab", |f| f["event"] == "chat" && f["payload"]["state"] == "final").await;
    assert_eq!(seen["payload"]["message"]["content"][0]["text"].as_str().unwrap(), reply);
    assert_eq!(agent_of(&app, &user_id).await.handshakes_ok(), 1, "one handshake serves both tabs");
}

#[tokio::test]
async fn on_a_server_without_a_model_failed_runs_say_so() {
    let app = TestApp::spawn().await;
    let (cookie, user_id) = app.signed_up_cookie("nomodel-fake@example.com").await;
    let mut ws = app.ws(&cookie, "").await;
    ws.ready().await;
    agent_of(&app, &user_id).await.set_reply(Reply::Error("request failed (HTTP 400)".into()));
    ws.request("q", "chat.send", json!({ "sessionKey": "main", "message": "hi", "idempotencyKey": "nm-1" })).await;
    let error = ws.until("error", |f| f["event"] == "chat" && f["payload"]["state"] == "error").await;
    assert!(error["payload"]["errorMessage"].as_str().unwrap().starts_with("No model is configured"));
    assert_eq!(error["payload"]["errorKind"], "no_model_configured");
}

#[tokio::test]
async fn with_a_model_configured_agent_errors_pass_through_unchanged() {
    let app = TestApp::spawn_with(&[
        "--llm-openai-base-url",
        "http://127.0.0.1:9/v1",
        "--llm-openai-api-key",
        "k",
        "--llm-model",
        "m",
    ])
    .await;
    let (cookie, user_id) = app.signed_up_cookie("model-fake@example.com").await;
    let mut ws = app.ws(&cookie, "").await;
    ws.ready().await;
    agent_of(&app, &user_id).await.set_reply(Reply::Error("rate limited".into()));
    ws.request("q", "chat.send", json!({ "sessionKey": "main", "message": "hi", "idempotencyKey": "m-1" })).await;
    let error = ws.until("error", |f| f["event"] == "chat" && f["payload"]["state"] == "error").await;
    assert_eq!(error["payload"]["errorMessage"], "rate limited");
}

/// A run whose model call Roost refused for credits fails with Roost's reason, not the agent's
/// "request failed"; another user's failures are untouched.
#[tokio::test]
async fn a_run_refused_for_credits_says_so_in_the_chat() {
    let dir = tempfile::tempdir().unwrap();
    let plans = crate::helpers::plans_file(dir.path(), 0, "m");
    let flags = [
        "--plans",
        &plans,
        "--llm-openai-base-url",
        "http://127.0.0.1:9/v1",
        "--llm-openai-api-key",
        "k",
        "--llm-model",
        "m",
    ];
    let app = TestApp::spawn_with(&flags).await;
    let (cookie, user_id) = app.signed_up_cookie("broke@example.com").await;
    let (other_cookie, other_id) = app.signed_up_cookie("other-broke@example.com").await;
    // The agent's model call: refused, as the user has no credits.
    let credential = gateway::agent_credentials::llm_credential(
        &app.state.secret,
        &gateway::domain::UserId::parse(&user_id).unwrap(),
    );
    let refused = reqwest::Client::new()
        .post(app.url("/llm/openai/v1/chat/completions"))
        .bearer_auth(&credential)
        .json(&json!({ "model": "m", "messages": [{ "role": "user", "content": "hi" }] }))
        .send()
        .await
        .unwrap();
    assert_eq!(crate::helpers::error_code(refused).await, (400, "out_of_credits".to_string()));
    for (cookie, id, key) in [(&cookie, &user_id, "oc-1"), (&other_cookie, &other_id, "oc-2")] {
        let mut ws = app.ws(cookie, "").await;
        ws.ready().await;
        agent_of(&app, id).await.set_reply(Reply::Error("request failed (HTTP 400)".into()));
        ws.request("q", "chat.send", json!({ "sessionKey": "main", "message": "hi", "idempotencyKey": key })).await;
        let error = ws.until("error", |f| f["event"] == "chat" && f["payload"]["state"] == "error").await;
        if id == &user_id {
            assert!(error["payload"]["errorMessage"].as_str().unwrap().starts_with("You're out of credits"), "{error}");
            assert_eq!(error["payload"]["errorKind"], "out_of_credits");
        } else {
            assert_eq!(
                error["payload"]["errorMessage"], "request failed (HTTP 400)",
                "another user's failure is theirs"
            );
        }
    }
}

#[tokio::test]
async fn logging_out_closes_that_sessions_sockets_only() {
    let app = TestApp::spawn().await;
    let (cookie, _) = app.signed_up_cookie("logout-ws@example.com").await;
    let res = app
        .post(
            &app.browser(),
            "/api/auth/login",
            &json!({ "email": "logout-ws@example.com", "password": crate::helpers::PASSWORD }),
        )
        .await;
    let other_cookie = res.headers()["set-cookie"].to_str().unwrap().split(';').next().unwrap().to_string();
    let mut mine = app.ws(&cookie, "").await;
    mine.ready().await;
    let mut other = app.ws(&other_cookie, "").await;
    other.ready().await;
    let res = app.send_as(&cookie, reqwest::Method::POST, "/api/auth/logout", None).await;
    assert_eq!(res.status(), 204);
    assert_eq!(mine.closed().await, (4401, "signed out".to_string()));
    assert!(other.chat("main", "still signed in").await.starts_with("Hello"), "the other session's socket stays open");
}

#[tokio::test]
async fn revoking_a_token_closes_the_sockets_it_opened() {
    let app = TestApp::spawn().await;
    let (client, _) = app.signed_up_user("revoke-ws@example.com").await;
    let token = app.create_token(&client, "bot").await;
    let bearer = format!("Bearer {}", token["token"].as_str().unwrap());
    let mut ws = Client::connect(&format!("ws://{}/ws", app.addr), &[("authorization", &bearer)]).await.unwrap();
    ws.ready().await;
    let id = token["id"].as_str().unwrap();
    let res = client.delete(app.url(&format!("/api/tokens/{id}"))).header("Origin", &app.origin).send().await.unwrap();
    assert_eq!(res.status(), 204);
    assert_eq!(ws.closed().await.0, 4401);
}

#[tokio::test]
async fn a_draining_server_tells_browsers_to_resume_elsewhere() {
    let mut app = TestApp::spawn().await;
    let (cookie, _) = app.signed_up_cookie("drain@example.com").await;
    let mut ws = app.ws(&cookie, "").await;
    ws.ready().await;
    app.shut_down();
    let (code, reason) = ws.closed().await;
    assert_eq!(code, 1012);
    assert!(reason.contains("reconnect"), "{reason}");
}

#[tokio::test]
async fn an_idle_link_is_closed_and_its_buffer_freed_after_the_grace_period() {
    let app = TestApp::spawn_with(&["--agent-link-idle-secs", "1"]).await;
    let (cookie, user_id) = app.signed_up_cookie("idle@example.com").await;
    let user = gateway::domain::UserId::parse(&user_id).unwrap();
    let mut ws = app.ws(&cookie, "").await;
    ws.ready().await;
    ws.chat("main", "hi").await;
    drop(ws);
    assert!(app.state.relays.existing_hub(&user).await.is_some(), "the link outlives the socket for a while");
    wait_until("the idle link is closed", || async { app.state.relays.existing_hub(&user).await.is_none() }).await;
    assert_eq!(app.state.relays.link_count(), 0, "its replay buffer is freed");
    let agent = agent_of(&app, &user_id).await;
    wait_until("the agent sees the link go", || async { agent.open_connections() == 0 }).await;
    assert_eq!(app.state.machines.start_gates(), 0, "the finished start left no gate behind");
    let mut ws = app.ws(&cookie, "?resume=3").await;
    ws.ready().await;
    ws.until_event("roost.gap").await;
}

#[tokio::test]
async fn signing_up_starts_the_agent_before_the_first_message() {
    let app = TestApp::spawn().await;
    let (_, user_id) = app.signed_up_cookie("prewarm@example.com").await;
    let user = gateway::domain::UserId::parse(&user_id).unwrap();
    for _ in 0..100 {
        if app.state.machines.address_if_ready(&user).await.is_some() {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("the agent was not started after sign-up");
}

#[tokio::test]
async fn benchmark_echo_agents_answer_each_request_with_a_sequenced_chat_event() {
    let app = TestApp::spawn_with(&["--fake-agent-echo"]).await;
    let (cookie, _) = app.signed_up_cookie("echo@example.com").await;
    let mut ws = app.ws(&cookie, "").await;
    ws.ready().await;
    ws.request("e1", "chat.send", json!({ "sessionKey": "main", "message": "ping", "idempotencyKey": "e1" })).await;
    let echoed = ws.until("echo", |f| f["event"] == "chat").await;
    assert!(echoed["roostSeq"].as_u64().is_some(), "the echo takes Roost's event path");
    assert_eq!(echoed["payload"]["method"], "chat.send");
    assert_eq!(echoed["payload"]["params"]["message"], "ping");
    assert!(echoed["payload"]["id"].as_str().unwrap().ends_with(":e1"), "the upstream saw the routed id");
}

#[tokio::test]
async fn benchmark_agents_can_all_be_one_external_upstream() {
    let upstream = fakes::openclaw::echo_upstream("bench-token").await.unwrap();
    let url = upstream.ws_url();
    let app = TestApp::spawn_with(&["--fake-agent-url", &url]).await;
    for email in ["ext1@example.com", "ext2@example.com"] {
        let (cookie, _) = app.signed_up_cookie(email).await;
        let mut ws = app.ws(&cookie, "").await;
        ws.ready().await;
        ws.request("x", "health", json!({})).await;
        let echoed = ws.until("echo", |f| f["event"] == "chat").await;
        assert_eq!(echoed["payload"]["method"], "health");
    }
    assert_eq!(upstream.handshakes_ok(), 2, "each user has a link of their own to the one upstream");
}
