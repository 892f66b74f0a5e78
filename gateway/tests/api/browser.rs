//! Drives the real pages in headless Chromium (Playwright scripts in `web/tests/`).

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use crate::helpers::TestApp;

fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

/// Runs one Node spec against the server. Outside CI a missing browser toolchain skips with a
/// loud message; in CI (`CI=true`) it fails.
pub fn run_spec(app: &TestApp, spec: &str, env: &[(&str, &str)]) {
    run_spec_at(&app.origin, spec, env)
}

/// The browser toolchain is here (else [`run_spec`] skips, outside CI).
fn browser_ready() -> bool {
    let chromium = std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    repo_root().join("web/tests/node_modules/playwright-core").exists() && PathBuf::from(&chromium).exists()
}

pub fn run_spec_at(origin: &str, spec: &str, env: &[(&str, &str)]) {
    let root = repo_root();
    let tests_dir = root.join("web/tests");
    if !browser_ready() {
        let msg = "browser tests need `npm ci --prefix web/tests` and Debian chromium (run .ci/run)";
        if std::env::var("CI").is_ok_and(|v| v == "true") {
            panic!("{msg}");
        }
        eprintln!("SKIPPED {spec}: {msg}");
        return;
    }
    let status = Command::new("node")
        .arg(tests_dir.join(spec))
        .env("ROOST_URL", origin)
        .env("SCREENSHOT_DIR", root.join("target/screenshots"))
        .envs(env.iter().copied())
        .status()
        .expect("node runs");
    assert!(status.success(), "{spec} failed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sign_up_log_in_create_and_revoke_a_token_in_chromium() {
    let app = TestApp::spawn().await;
    tokio::task::spawn_blocking(move || run_spec(&app, "auth.spec.mjs", &[])).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_chat_page_streams_a_reply_and_keeps_history_in_chromium() {
    // No prewarm: the page itself wakes the agent, so it has stages to show.
    let app = TestApp::spawn_with(&["--no-prewarm"]).await;
    tokio::task::spawn_blocking(move || {
        run_spec(&app, "chat.spec.mjs", &[("EXPECT_REPLY", "Hello from your simulated agent")])
    })
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_chat_page_talks_to_a_real_openclaw_agent_in_chromium() {
    if !crate::e2e_openclaw::available() {
        return;
    }
    let shared = crate::e2e_openclaw::shared();
    let _slot = crate::e2e_openclaw::agent_slot("the_chat_page_talks_to_a_real_openclaw_agent_in_chromium").await;
    let origin = shared.app.origin.clone();
    tokio::task::spawn_blocking(move || {
        run_spec_at(
            &origin,
            "chat.spec.mjs",
            &[
                ("EXPECT_REPLY", crate::e2e_openclaw::REPLY_PREFIX),
                ("SCREENSHOT_PREFIX", "real-agent-"),
                // A fresh machine installs the runtime first; a busy one starts agents slowly.
                ("READY_TIMEOUT_MS", "300000"),
                // Cut the page's socket mid-reply and check the resume loses and repeats nothing.
                ("DROP_MID_REPLY", "1"),
            ],
        )
    })
    .await
    .unwrap();
}

/// Issue 13: sends are never lost or doubled, the connection indicator notices a dead link, a
/// stopped reply stays marked, and every tab shows the same chat.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_chat_page_keeps_sends_connection_and_tabs_honest_in_chromium() {
    // Pings every second, so a silenced link is noticed within a few.
    let app = TestApp::spawn_with(&["--browser-ping-secs", "1"]).await;
    let email = "trust@example.com";
    let (cookie, user_id) = app.signed_up_cookie(email).await;
    let mut ws = app.ws(&cookie, "").await;
    ws.ready().await;
    drop(ws);
    // A reply long enough (20 ms a word) to be stopped while it streams.
    let reply = (1..=150).map(|i| format!("word{i}")).collect::<Vec<_>>().join(" ");
    let agent = app.state.machines.simulated().unwrap().agent(&user_id).await.unwrap();
    agent.set_reply(gateway::machines::simulated::Reply::Text(reply));
    let env = [("EMAIL", email), ("PASSWORD", crate::helpers::PASSWORD)];
    tokio::task::spawn_blocking(move || run_spec(&app, "trust.spec.mjs", &env)).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_agent_badge_and_panel_stop_and_restart_the_agent_in_chromium() {
    let app = TestApp::spawn_with(&["--no-prewarm"]).await;
    tokio::task::spawn_blocking(move || run_spec(&app, "lifecycle.spec.mjs", &[])).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_agent_shows_its_reason_in_the_panel_and_restarts_in_chromium() {
    let app = TestApp::spawn_with(&["--no-prewarm"]).await;
    let email = "crashed@example.com";
    let (cookie, user_id) = app.signed_up_cookie(email).await;
    let mut ws = app.ws(&cookie, "").await;
    ws.ready().await;
    drop(ws);
    // What the local provider reports at the end of a crash loop.
    let reason = "your agent crashed 3 times in 90 seconds (last: exit code 1); it was stopped";
    app.state.machines.simulated().unwrap().fail(&user_id, reason).await;
    crate::helpers::wait_until("the failure is recorded", || async {
        let machine = app.json_as(&cookie, "/api/machine").await;
        machine["state"] == "failed" && machine["history"][0]["reason"] == reason
    })
    .await;
    let env = [("FAILED_EMAIL", email), ("PASSWORD", crate::helpers::PASSWORD), ("FAILED_REASON", reason)];
    tokio::task::spawn_blocking(move || run_spec(&app, "lifecycle.spec.mjs", &env)).await.unwrap();
}

/// The Usage page's figures are the server's: three real calls through the metered proxy (to the
/// fake provider), then the page in Chromium.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_usage_page_shows_the_credits_chart_and_budget_in_chromium() {
    let llm = fakes::llm::FakeLlm::spawn(fakes::llm::FakeLlmOptions {
        api_key: "sk-op".into(),
        reply: Some("one two three four five".into()),
        ..Default::default()
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    // 1 credit per prompt token, 2 per reply token; 45 a month, so three calls leave it low.
    let plans = crate::helpers::plans_file(dir.path(), 45, "gpt-test");
    let base = format!("{}/v1", llm.base_url());
    let app = TestApp::spawn_with(&[
        "--plans",
        &plans,
        "--llm-openai-base-url",
        &base,
        "--llm-openai-api-key",
        "sk-op",
        "--no-prewarm",
    ])
    .await;
    let email = "usage-page@example.com";
    let (cookie, id) = app.signed_up_cookie(email).await;
    let credential =
        gateway::agent_credentials::llm_credential(&app.state.secret, &gateway::domain::UserId::parse(&id).unwrap());
    for _ in 0..3 {
        let res = reqwest::Client::new()
            .post(app.url("/llm/openai/v1/chat/completions"))
            .bearer_auth(&credential)
            .json(&serde_json::json!({"model": "gpt-test", "messages": [{"role": "user", "content": "hello there proxy friend"}]}))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200);
        let _ = res.bytes().await;
    }
    crate::helpers::wait_until("three calls are debited", || async { app.count("usage_events").await == 3 }).await;
    // Each call: 4 prompt words + 5 reply words = 4 + 10 credits.
    let (spent, balance) = (3 * 14, 45 - 3 * 14);
    let billing = app.json_as(&cookie, "/api/billing").await;
    assert_eq!(
        (billing["balance"].as_i64(), billing["spent_this_month"].as_i64()),
        (Some(balance), Some(spent)),
        "{billing}"
    );
    tokio::task::spawn_blocking(move || {
        run_spec(
            &app,
            "usage.spec.mjs",
            &[
                ("EMAIL", email),
                ("PASSWORD", crate::helpers::PASSWORD),
                ("EXPECT_BALANCE", &balance.to_string()),
                ("EXPECT_SPENT", &spent.to_string()),
                ("EXPECT_MODEL", "gpt-test"),
            ],
        )
    })
    .await
    .unwrap();
}

/// Issue 13: start-up in plain words with the usual time, errors in Roost's voice, code blocks,
/// tool cards, and sign-in pages with a clean console.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_chat_page_shows_start_up_tools_code_and_plain_errors_in_chromium() {
    // A model is configured (nothing answers there): a failed reply is then the agent's own.
    let app = TestApp::spawn_with(&[
        "--no-prewarm",
        "--llm-openai-base-url",
        "http://127.0.0.1:9/v1",
        "--llm-openai-api-key",
        "sk-unused",
    ])
    .await;
    // Earlier starts on this server took 18, 20 and 25 s: the usual is their median.
    for (user, started, took) in [("u-earlier-1", 1000, 18), ("u-earlier-2", 2000, 20), ("u-earlier-3", 3000, 25)] {
        app.sql(&format!(
            "INSERT INTO machine_events (user_id, at, state, stage, reason) VALUES \
             ('{user}', {started}, 'starting', 'starting', 'started'), \
             ('{user}', {}, 'ready', 'ready', 'ready')",
            started + took
        ))
        .await;
    }
    // Slow enough for the page to show the stages.
    app.state.machines.simulated().unwrap().set_stage_delay(std::time::Duration::from_secs(2));
    tokio::task::spawn_blocking(move || run_spec(&app, "chatux.spec.mjs", &[("EXPECT_USUAL", "20 s")])).await.unwrap();
}

/// Issue 13: axe-core on every page (light and dark), dark mode, a phone-sized screen, and
/// replies announced once finished.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_pages_pass_axe_in_light_and_dark_and_fit_a_phone_in_chromium() {
    let app = TestApp::spawn().await;
    tokio::task::spawn_blocking(move || run_spec(&app, "access.spec.mjs", &[])).await.unwrap();
}

/// The Settings "Backup" card, with the simulated agent (its state on disk, the real archive
/// code): download, a confirmed restore with its progress, and a tampered file refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_backup_card_downloads_restores_and_refuses_a_tampered_file_in_chromium() {
    let app = TestApp::spawn().await;
    let email = "backup-card@example.com";
    let (cookie, user_id) = app.signed_up_cookie(email).await;
    let mut ws = app.ws(&cookie, "").await;
    ws.ready().await;
    ws.chat("main", "remember the blue door").await;
    drop(ws);
    let plan = app.state.machines.simulated().unwrap().state_dir(&user_id).join("workspace/notes/plan.md");
    std::fs::create_dir_all(plan.parent().unwrap()).unwrap();
    std::fs::write(&plan, "1. paint the door").unwrap();
    let scratch = tempfile::tempdir().unwrap();
    let backup = scratch.path().join("backup.tar.gz");
    let env_backup = backup.display().to_string();
    let spec = tokio::task::spawn_blocking(move || {
        let env = [("EMAIL", email), ("PASSWORD", crate::helpers::PASSWORD), ("BACKUP_FILE", env_backup.as_str())];
        run_spec(&app, "backup.spec.mjs", &env);
    });
    // Once the page has its backup, the agent's file changes; the restore must bring it back.
    let runs = browser_ready();
    if runs {
        crate::helpers::wait_until_within("the page downloaded its backup", Duration::from_secs(60), || {
            let backup = backup.clone();
            async move { backup.exists() }
        })
        .await;
        std::fs::write(&plan, "changed since the backup").unwrap();
        std::fs::write(scratch.path().join("backup.tar.gz.changed"), "").unwrap();
    }
    spec.await.unwrap();
    if runs {
        assert_eq!(
            std::fs::read_to_string(&plan).unwrap(),
            "1. paint the door",
            "restored, and the tampered one refused"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_files_page_browses_previews_uploads_and_deletes_in_chromium() {
    let app = TestApp::spawn_with(&[
        "--agent-provider",
        "local",
        "--agent-exec-bin",
        env!("CARGO_BIN_EXE_roost"),
        "--no-prewarm",
    ])
    .await;
    let (client, user) = app.signed_up_user("files-page@example.com").await;
    let listed = client.get(app.url("/api/files")).send().await.unwrap();
    assert_eq!(listed.status(), 200, "the workspace is made");
    let workspace = app.dir.path().join("users").join(user).join("state/workspace");
    std::fs::create_dir(workspace.join("reports")).unwrap();
    std::fs::write(
        workspace.join("reports/summary.md"),
        "# Weekly summary\n\nAll **done**.\n\n<script>window.__ran = true</script>\n<img src=x onerror=\"window.__ran = true\">\n",
    )
    .unwrap();
    // A 1×1 PNG.
    const PNG: &[u8] = &[
        0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0x00, 0x00, 0x00, 0x0d, 0x49, 0x48, 0x44, 0x52, 0x00, 0x00,
        0x00, 0x01, 0x00, 0x00, 0x00, 0x01, 0x08, 0x06, 0x00, 0x00, 0x00, 0x1f, 0x15, 0xc4, 0x89, 0x00, 0x00, 0x00,
        0x0d, 0x49, 0x44, 0x41, 0x54, 0x78, 0x9c, 0x63, 0xf8, 0xcf, 0xc0, 0xf0, 0x1f, 0x00, 0x05, 0x00, 0x01, 0xff,
        0x89, 0x99, 0x3d, 0x1d, 0x00, 0x00, 0x00, 0x00, 0x49, 0x45, 0x4e, 0x44, 0xae, 0x42, 0x60, 0x82,
    ];
    std::fs::write(workspace.join("chart.png"), PNG).unwrap();
    tokio::task::spawn_blocking(move || {
        run_spec(&app, "files.spec.mjs", &[("EMAIL", "files-page@example.com"), ("PASSWORD", crate::helpers::PASSWORD)])
    })
    .await
    .unwrap();
}
