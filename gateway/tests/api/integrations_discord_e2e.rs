//! End to end with the real OpenClaw, its Discord plugin and the fake Discord (REST and gateway
//! WebSocket on one origin): `--discord-api-base` reaches the agent as `DISCORD_API_URL`.

use std::path::Path;
use std::time::Duration;

use fakes::discord::{FakeDiscord, MESSAGE_CONTENT};
use fakes::llm::{FakeLlm, FakeLlmOptions};
use serde_json::{Value, json};

use crate::e2e_openclaw::{READY_WAIT, REPLY_PREFIX, agent_slot, available};
use crate::helpers::{TestApp, wait_until_within};
use crate::integrations_e2e::poll_json;

const STRANGER: &str = "424242424242424242";

fn repo_root() -> std::path::PathBuf {
    std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

async fn discord_agent_app(discord: &FakeDiscord, llm: &FakeLlm) -> TestApp {
    let runtime_dir = repo_root().join("target/agent-runtime").to_str().unwrap().to_string();
    let base = format!("{}/v1", llm.base_url());
    let discord_base = discord.base_url();
    TestApp::spawn_with(&[
        "--agent-provider",
        "local",
        "--runtime-dir",
        &runtime_dir,
        "--agent-ready-timeout-secs",
        "240",
        "--no-prewarm",
        "--agent-exec-bin",
        env!("CARGO_BIN_EXE_roost"),
        "--llm-openai-base-url",
        &base,
        "--llm-openai-api-key",
        "sk-operator",
        "--llm-model",
        "fake-model",
        "--discord-api-base",
        &discord_base,
    ])
    .await
}

/// POSTs until the agent is up; answers the status and body of the first other answer.
async fn connect_when_ready(app: &TestApp, cookie: &str, token: &str) -> (u16, Value) {
    let deadline = tokio::time::Instant::now() + READY_WAIT;
    loop {
        let res = app
            .send_as(cookie, reqwest::Method::POST, "/api/integrations/discord", Some(&json!({ "token": token })))
            .await;
        let status = res.status().as_u16();
        let body: Value = res.json().await.unwrap();
        if status != 409 || body["error"]["code"] != "agent_starting" {
            return (status, body);
        }
        assert!(tokio::time::Instant::now() < deadline, "the agent never became ready");
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
}

fn scan(dir: &Path, token: &str, found: &mut Vec<String>, scanned: &mut usize) {
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        let Ok(kind) = entry.file_type() else { continue };
        if kind.is_dir() && path.file_name().is_some_and(|n| n == "roost-secrets" || n == "node_modules") {
            continue;
        }
        if kind.is_dir() {
            scan(&path, token, found, scanned);
        } else if kind.is_file() {
            *scanned += 1;
            let bytes = std::fs::read(&path).unwrap_or_default();
            if bytes.windows(token.len()).any(|w| w == token.as_bytes()) {
                found.push(path.display().to_string());
            }
        }
    }
}

/// Waits until the fake saw a DM to `to` that satisfies `what`.
async fn dm_sent(discord: &FakeDiscord, to: &str, what: &str, ok: impl Fn(&str) -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    loop {
        let sent = discord.sent_dms();
        if sent.iter().any(|(r, text)| r == to && ok(text)) {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no DM {what}: {sent:?}; unknown calls {:?}",
            discord.unknown_requests()
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn e2e_a_discord_bot_connects_pairs_answers_through_the_agent_and_disconnects() {
    if !available() {
        return;
    }
    let _slot = agent_slot("e2e_a_discord_bot_connects_pairs_answers_through_the_agent_and_disconnects").await;
    let discord = FakeDiscord::spawn().await;
    let llm = FakeLlm::spawn(FakeLlmOptions {
        api_key: "sk-operator".into(),
        reply: Some(format!("{REPLY_PREFIX}, answering on Discord.")),
        ..FakeLlmOptions::default()
    })
    .await;
    let app = discord_agent_app(&discord, &llm).await;
    let token = discord.add_bot("roost_discord_bot", MESSAGE_CONTENT);
    let (cookie, user_id) = app.signed_up_cookie("discord-e2e@example.com").await;
    let mut bodies = Vec::new();

    // 1. Connect through Roost: the agent's plugin asks the fake for the gateway, identifies and
    //    gets READY; Roost reads "connected" from the agent's own channel status.
    let (status, connected) = connect_when_ready(&app, &cookie, &token).await;
    assert_eq!(status, 201, "{connected}; unknown calls {:?}", discord.unknown_requests());
    bodies.push(connected.to_string());
    assert_eq!(connected["bot"]["username"], "roost_discord_bot");
    let user_dir = app.dir.path().join("users").join(&user_id);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(90);
    let listed = loop {
        let listed = app.json_as(&cookie, "/api/integrations").await;
        if listed["channels"][1]["status"]["state"] == "connected" {
            break listed;
        }
        if tokio::time::Instant::now() > deadline {
            let log = std::fs::read_to_string(user_dir.join("agent.log")).unwrap_or_default();
            let tail: Vec<&str> = log.lines().filter(|l| l.contains("discord") || l.contains("plugin")).collect();
            panic!(
                "the bot never connected: {listed}\n{:?}\n{:?}\n{}",
                discord.gateway_connections(),
                discord.unknown_requests(),
                tail.join("\n")
            );
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    bodies.push(listed.to_string());
    assert_eq!(discord.gateway_open(&token), 1, "{:?}", discord.gateway_connections());
    let first = &discord.gateway_connections()[0];
    assert!(first.events.iter().any(|e| e == "identify"), "{first:?}");

    // 2. A stranger's DM gives a pairing request, listed in Roost, and the stranger a code.
    assert_eq!(discord.deliver_dm(&token, STRANGER, "Ada", "hello bot"), 1);
    let requests = poll_json(&app, &cookie, "/api/integrations/discord/pairing", "the pairing request shows", |v| {
        v["requests"].as_array().is_some_and(|r| !r.is_empty())
    })
    .await;
    bodies.push(requests.to_string());
    let request = &requests["requests"][0];
    assert_eq!(request["sender_id"].as_str(), Some(STRANGER), "{request}");
    dm_sent(&discord, STRANGER, "with the pairing code", |t| t.contains("Pairing code")).await;

    // 3. Approve it.
    let request_id = request["id"].as_str().unwrap();
    let path = format!("/api/integrations/discord/pairing/{request_id}/approve");
    let res = app.send_as(&cookie, reqwest::Method::POST, &path, None).await;
    assert_eq!(res.status(), 200);

    // 4. The next DM is answered with the fake model's text, through the fake's POST messages.
    assert_eq!(discord.deliver_dm(&token, STRANGER, "Ada", "what can you do?"), 1);
    dm_sent(&discord, STRANGER, "with the model's answer", |t| t.contains(REPLY_PREFIX)).await;

    // The test message goes to the approved user.
    let res = app.send_as(&cookie, reqwest::Method::POST, "/api/integrations/discord/test", None).await;
    assert_eq!(res.status(), 200);
    bodies.push(res.text().await.unwrap());
    dm_sent(&discord, STRANGER, "from Roost's test", |t| t.starts_with("Hello from Roost")).await;

    // The token is only in the agent's secret file.
    let config = std::fs::read_to_string(user_dir.join("state/openclaw.json")).unwrap();
    assert!(config.contains("roost-discord") && config.contains("\"discord\""), "{config}");
    let (mut found, mut scanned) = (Vec::new(), 0);
    scan(app.dir.path(), &token, &mut found, &mut scanned);
    assert!(scanned > 3, "scanned the data dir: {scanned}");
    assert!(found.is_empty(), "the token is in {found:?}");
    for body in &bodies {
        assert!(!body.contains(&token), "the token is in an answer: {body}");
    }

    // 5. Disconnect: the plugin closes its gateway socket and does not come back.
    let res = app.send_as(&cookie, reqwest::Method::DELETE, "/api/integrations/discord", None).await;
    assert_eq!(res.status(), 204);
    wait_until_within("the gateway socket closes", Duration::from_secs(30), || {
        let open = discord.gateway_open(&token);
        async move { open == 0 }
    })
    .await;
    let connections = discord.gateway_connections().len();
    tokio::time::sleep(Duration::from_secs(8)).await;
    assert_eq!(discord.gateway_connections().len(), connections, "no reconnect after the disconnect");
    assert_eq!(std::fs::read_dir(user_dir.join("state/roost-secrets")).unwrap().count(), 0);
    let config = std::fs::read_to_string(user_dir.join("state/openclaw.json")).unwrap();
    assert!(!config.contains("roost-discord"), "the channel left the agent's config: {config}");

    // A token Discord's gateway refuses (close 4004) is reported, and nothing is saved.
    discord.close_next_identify(4004);
    let (status, refused) = connect_when_ready(&app, &cookie, &token).await;
    assert_eq!(status, 502, "{refused}");
    assert_eq!(refused["error"]["code"], "bot_failed", "{refused}");
    assert!(!refused.to_string().contains(&token));
    assert_eq!(app.count("integrations").await, 0);
    assert!(discord.gateway_connections().iter().any(|c| c.events.iter().any(|e| e == "closed 4004")));

    app.state.machines.shutdown().await;
}
