//! The agent console (`/agent/`) against the real OpenClaw in Chromium: it opens behind the
//! Roost login without a token or pairing prompt, reaches chat and settings, a user's setting
//! survives an agent restart, a platform-owned key is refused while the agent keeps working,
//! and no credential is anywhere the browser could see it.

use gateway::domain::UserId;

use crate::e2e_openclaw::{READY_WAIT, REPLY_PREFIX, Shared, agent_slot, available, shared};

/// Roost's device token on this agent, as the agent hands it out (Roost never keeps it).
async fn roost_device_token(shared: &Shared, user: &UserId) -> String {
    let state = shared.app.state.clone();
    let user = user.clone();
    shared.on_server(async move {
        let address = state.machines.ensure_ready(&user).await.expect("the agent is up");
        let token = gateway::agent_credentials::gateway_token(&state.secret, &user);
        let upstream = gateway::openclaw::connect_scoped(
            &address,
            &token,
            state.relays.device(),
            &gateway::openclaw::SCOPES,
            None,
        )
        .await
        .expect("Roost connects");
        upstream.hello["auth"]["deviceToken"].as_str().expect("a device token is issued").to_string()
    })
}

fn run_phase(shared: &Shared, cookie: &str, phase: &str, dump: &std::path::Path) -> String {
    let shots = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/screenshots");
    crate::browser::run_spec_at(
        &shared.app.origin,
        "console.spec.mjs",
        &[
            ("ROOST_COOKIE", cookie),
            ("DUMP_FILE", dump.to_str().unwrap()),
            ("PHASE", phase),
            ("EXPECT_REPLY", REPLY_PREFIX),
            ("SHOTS", shots.to_str().unwrap()),
            ("READY_TIMEOUT_MS", &READY_WAIT.as_millis().to_string()),
        ],
    );
    std::fs::read_to_string(dump).expect("the spec dumped what the browser held")
}

fn assert_clean(dump: &str, secrets: &[(&str, &str)], phase: &str) {
    let value: serde_json::Value = serde_json::from_str(dump).unwrap();
    let count = |key: &str| value[key].as_array().map_or(0, Vec::len);
    eprintln!(
        "scan {phase}: {} bytes; {} frames, {} URLs, {} responses, {} page/frame snapshots, {} cookies, {} localStorage, {} IndexedDB stores; secrets checked: {}",
        dump.len(),
        count("frames"),
        count("urls"),
        count("responses"),
        count("html"),
        count("cookies"),
        value["storage"]["local"].as_object().map_or(0, |m| m.len()),
        count_stores(&value),
        secrets.len()
    );
    for (what, secret) in secrets {
        assert!(secret.len() >= 16, "{what} is a real secret");
        assert!(!dump.contains(secret), "{what} reached the browser ({phase})");
    }
}

fn count_stores(value: &serde_json::Value) -> usize {
    value["storage"]["idb"].as_array().map_or(0, Vec::len)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn e2e_the_agent_console_runs_the_real_control_ui_without_a_token_in_chromium() {
    if !available() {
        return;
    }
    let shared = shared();
    let app = &shared.app;
    let _slot = agent_slot("e2e_the_agent_console_runs_the_real_control_ui_without_a_token_in_chromium").await;
    let (cookie, user_id) = app.signed_up_cookie("console-e2e@example.com").await;
    let user = UserId::parse(&user_id).unwrap();
    let dump = app.dir.path().join("console-dump.json");

    let (phase_cookie, phase_dump) = (cookie.clone(), dump.clone());
    let opened = tokio::task::block_in_place(|| run_phase(shared, &phase_cookie, "open", &phase_dump));
    let device_before = roost_device_token(shared, &user).await;

    // Restart the agent: Roost writes its keys again on start; the user's name must survive.
    let state = app.state.clone();
    let stop_user = user.clone();
    shared.on_server(async move { state.machines.stop(&stop_user).await.expect("the agent stops") });
    let reopened = tokio::task::block_in_place(|| run_phase(shared, &cookie, "after-restart", &dump));
    let device_after = roost_device_token(shared, &user).await;

    let gateway_token = gateway::agent_credentials::gateway_token(&app.state.secret, &user);
    let llm = gateway::agent_credentials::llm_credential(&app.state.secret, &user);
    let llm_tag = llm.rsplit('.').next().unwrap().to_string();
    let secrets = [
        ("the gateway token", gateway_token.as_str()),
        ("Roost's device token (before the restart)", device_before.as_str()),
        ("Roost's device token (after the restart)", device_after.as_str()),
        ("the LLM credential", llm.as_str()),
        ("the LLM credential's tag", llm_tag.as_str()),
    ];
    assert_clean(&opened, &secrets, "open");
    assert_clean(&reopened, &secrets, "after-restart");
}
