//! End to end with the real OpenClaw and the fake Telegram Bot API: Roost and the agent both
//! talk to the fake (`--telegram-api-base` becomes the agent's `apiRoot`).

use std::path::Path;
use std::time::Duration;

use fakes::llm::{FakeLlm, FakeLlmOptions};
use fakes::telegram::FakeTelegram;
use serde_json::{Value, json};

use crate::e2e_openclaw::{READY_WAIT, REPLY_PREFIX, agent_slot, available};
use crate::helpers::{TestApp, wait_until_within};

const STRANGER: i64 = 4242;

fn repo_root() -> std::path::PathBuf {
    std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

/// A Roost server with real local agents, the fake LLM and the fake Bot API.
pub async fn real_agent_app(telegram: &FakeTelegram, llm: &FakeLlm) -> TestApp {
    let runtime_dir = repo_root().join("target/agent-runtime").to_str().unwrap().to_string();
    let base = format!("{}/v1", llm.base_url());
    let telegram_base = telegram.base_url();
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
        "--telegram-api-base",
        &telegram_base,
        // Short, so the test sees a connected bot keep the agent on past it.
        "--agent-idle-timeout",
        "8s",
    ])
    .await
}

/// POSTs until the agent is up (the first answers say it is starting).
pub async fn connect_when_ready(app: &TestApp, cookie: &str, token: &str) -> Value {
    let deadline = tokio::time::Instant::now() + READY_WAIT;
    loop {
        let res = app
            .send_as(cookie, reqwest::Method::POST, "/api/integrations/telegram", Some(&json!({ "token": token })))
            .await;
        let status = res.status().as_u16();
        let body: Value = res.json().await.unwrap();
        if status == 201 {
            return body;
        }
        assert_eq!(status, 409, "only 'agent starting' may precede the connect: {body}");
        assert_eq!(body["error"]["code"], "agent_starting", "{body}");
        assert!(tokio::time::Instant::now() < deadline, "the agent never became ready");
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
}

/// Every file under `dir` (but the agent's secret files) as bytes, for scanning.
fn files_under(dir: &Path, out: &mut Vec<(String, Vec<u8>)>) {
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        let Ok(kind) = entry.file_type() else { continue };
        if kind.is_dir() && path.file_name().is_some_and(|n| n == "roost-secrets" || n == "node_modules") {
            continue;
        }
        if kind.is_dir() {
            files_under(&path, out);
        } else if kind.is_file() {
            out.push((path.display().to_string(), std::fs::read(&path).unwrap_or_default()));
        }
    }
}

/// GETs `path` every half second until `done` holds (each GET asks the real agent).
pub async fn poll_json(app: &TestApp, cookie: &str, path: &str, what: &str, done: impl Fn(&Value) -> bool) -> Value {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(90);
    loop {
        let value = app.json_as(cookie, path).await;
        if done(&value) {
            return value;
        }
        assert!(tokio::time::Instant::now() < deadline, "timed out waiting until {what}: {value}");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// The last `lines` lines of the user's agent log (OpenClaw's own output), for a failure message.
pub fn agent_log_tail(app: &TestApp, user_id: &str, lines: usize) -> String {
    let log = std::fs::read_to_string(app.dir.path().join("users").join(user_id).join("agent.log")).unwrap_or_default();
    let all: Vec<&str> = log.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

fn contains(hay: &[u8], needle: &str) -> bool {
    hay.windows(needle.len()).any(|w| w == needle.as_bytes())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn e2e_a_telegram_bot_connects_pairs_answers_through_the_agent_and_disconnects() {
    if !available() {
        return;
    }
    let _slot = agent_slot("e2e_a_telegram_bot_connects_pairs_answers_through_the_agent_and_disconnects").await;
    let telegram = FakeTelegram::spawn().await;
    // A fixed reply: OpenClaw trims the echoed message envelope off the fake's default one.
    let llm = FakeLlm::spawn(FakeLlmOptions {
        api_key: "sk-operator".into(),
        reply: Some(format!("{REPLY_PREFIX}, answering on Telegram.")),
        ..FakeLlmOptions::default()
    })
    .await;
    let app = real_agent_app(&telegram, &llm).await;
    let token = telegram.add_bot("roost_e2e_bot");
    let (cookie, user_id) = app.signed_up_cookie("bot-e2e@example.com").await;
    let mut bodies = Vec::new();

    // 1. Connect through Roost; the agent starts, polls the fake and reports the bot connected.
    let connected = connect_when_ready(&app, &cookie, &token).await;
    bodies.push(connected.to_string());
    assert_eq!(connected["bot"]["username"], "roost_e2e_bot");
    assert_eq!(connected["bot"]["link"], "https://t.me/roost_e2e_bot");
    let listed = poll_json(&app, &cookie, "/api/integrations", "the agent reports the bot connected", |v| {
        v["channels"][0]["status"]["state"] == "connected"
    })
    .await;
    bodies.push(listed.to_string());
    // Nobody has a page open, yet the running bot keeps the agent on past its idle timeout.
    tokio::time::sleep(Duration::from_secs(14)).await;
    let machine = app.json_as(&cookie, "/api/machine").await;
    assert_eq!(machine["state"], "ready", "a connected bot keeps the agent on: {machine}");
    let calls: Vec<String> = telegram.calls(&token).into_iter().map(|(m, _)| m).collect();
    assert!(calls.iter().any(|m| m == "getMe") && calls.iter().any(|m| m == "getUpdates"), "{calls:?}");

    // 2. A stranger's DM gives a pairing request, listed in Roost.
    telegram.deliver_dm(&token, STRANGER, "Ada", "hello bot");
    let requests = poll_json(&app, &cookie, "/api/integrations/telegram/pairing", "the pairing request shows", |v| {
        v["requests"].as_array().is_some_and(|r| !r.is_empty())
    })
    .await;
    bodies.push(requests.to_string());
    let request = &requests["requests"][0];
    assert_eq!(request["sender_id"].as_str().map(str::to_string), Some(STRANGER.to_string()), "{request}");
    let pairing_reply = telegram.sent_messages(&token);
    assert!(
        pairing_reply.iter().any(|m| m["text"].as_str().is_some_and(|t| t.contains("Pairing code"))),
        "the stranger was given a code: {pairing_reply:?}"
    );

    // 3. Approve it, through the agent's pairing RPC.
    let request_id = request["id"].as_str().unwrap();
    let res = app
        .send_as(
            &cookie,
            reqwest::Method::POST,
            &format!("/api/integrations/telegram/pairing/{request_id}/approve"),
            None,
        )
        .await;
    assert_eq!(res.status(), 200);
    let approved: Value = res.json().await.unwrap();
    assert_eq!(approved["sender_id"], STRANGER.to_string());

    // 4. The next DM is answered by the agent with the fake model's text, through sendMessage.
    let before = telegram.calls(&token).len();
    telegram.deliver_dm(&token, STRANGER, "Ada", "what can you do?");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    loop {
        let calls = telegram.calls(&token);
        let answered = calls.iter().skip(before).any(|(method, m)| {
            matches!(method.as_str(), "sendMessage" | "editMessageText")
                && m["text"].as_str().is_some_and(|t| t.contains(REPLY_PREFIX))
                && m["chat_id"].to_string().trim_matches('"') == STRANGER.to_string()
        });
        if answered {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the agent never answered through the Bot API: {:?}\nthe agent's log:\n{}",
            &calls[before..],
            agent_log_tail(&app, &user_id, 60)
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // The test message goes to the approved chat.
    let res = app.send_as(&cookie, reqwest::Method::POST, "/api/integrations/telegram/test", None).await;
    assert_eq!(res.status(), 200);
    bodies.push(res.text().await.unwrap());
    assert!(telegram.sent_messages(&token).iter().any(|m| {
        m["text"].as_str().is_some_and(|t| t.starts_with("Hello from Roost"))
            && m["chat_id"].as_str() == Some(STRANGER.to_string().as_str())
    }));

    // The token is nowhere but the agent's own secret file: not in any answer, not in the
    // agent's config, not in the database file or any log under the data dir.
    let user_dir = app.dir.path().join("users").join(&user_id);
    let config = std::fs::read_to_string(user_dir.join("state/openclaw.json")).unwrap();
    assert!(config.contains("tokenFile") && config.contains(&telegram.base_url()), "{config}");
    let mut files = Vec::new();
    files_under(app.dir.path(), &mut files);
    assert!(files.len() > 3, "scanned the data dir: {}", files.len());
    for (path, bytes) in &files {
        assert!(!contains(bytes, &token), "the token is in {path}");
    }
    for body in &bodies {
        assert!(!body.contains(&token), "the token is in an answer: {body}");
    }
    let secret_files: Vec<_> = std::fs::read_dir(user_dir.join("state/roost-secrets")).unwrap().flatten().collect();
    assert_eq!(secret_files.len(), 1);
    let mode = std::os::unix::fs::PermissionsExt::mode(&secret_files[0].metadata().unwrap().permissions());
    assert_eq!(mode & 0o077, 0, "only the agent's user reads the token file");

    // 5. Disconnect: the channel leaves the agent, the poller stops, the token is gone.
    let res = app.send_as(&cookie, reqwest::Method::DELETE, "/api/integrations/telegram", None).await;
    assert_eq!(res.status(), 204);
    wait_until_within("the agent stops polling", Duration::from_secs(30), || {
        let waiting = telegram.polls_waiting(&token);
        async move { waiting == 0 }
    })
    .await;
    let polls = telegram.polls(&token);
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(telegram.polls(&token), polls, "no getUpdates after the disconnect");
    assert_eq!(app.count("integrations").await, 0);
    assert_eq!(std::fs::read_dir(user_dir.join("state/roost-secrets")).unwrap().count(), 0, "the token file is gone");
    let listed = app.json_as(&cookie, "/api/integrations").await;
    assert_eq!(listed["channels"][0]["connected"], false, "{listed}");
    let config_file = user_dir.join("state/openclaw.json");
    let gone = || !std::fs::read_to_string(&config_file).unwrap().contains("tokenFile");
    // The agent writes its config file itself; give the write a moment to land.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    while !gone() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the channel stayed in the agent's config\nthe agent's log:\n{}",
            agent_log_tail(&app, &user_id, 60)
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Without a bot, the idle agent stops again.
    poll_json(&app, &cookie, "/api/machine", "the idle agent stops without its bot", |m| m["state"] == "idle_stopped")
        .await;

    // The same user, agent and fake in Chromium, with a second bot.
    let browser_token = telegram.add_bot("roost_browser_bot");
    let env = [
        ("EMAIL".to_string(), "bot-e2e@example.com".to_string()),
        ("PASSWORD".to_string(), crate::helpers::PASSWORD.to_string()),
        ("BOT_TOKEN".to_string(), browser_token.clone()),
        ("TELEGRAM_URL".to_string(), telegram.base_url()),
        ("STRANGER_ID".to_string(), "5151".to_string()),
    ];
    let origin = app.origin.clone();
    tokio::task::spawn_blocking(move || {
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        crate::browser::run_spec_at(&origin, "integrations.spec.mjs", &env)
    })
    .await
    .unwrap();

    app.state.machines.shutdown().await;
}
