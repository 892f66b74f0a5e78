//! End to end with the real OpenClaw gateway (npm `openclaw` on Node 24), launched by the
//! `local` provider, with the fake LLM as the operator's upstream behind Roost's LLM proxy.
//!
//! Each real agent costs about 1 GB and 15-30 s to start, so one Roost server (and each user's
//! agent) is shared by these tests, on a runtime that outlives any single test, and at most
//! one agent starts at a time ([`agent_slot`]).

use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::Duration;

use fakes::llm::{FakeLlm, FakeLlmOptions};
use serde_json::{Value, json};
use tokio::sync::Semaphore;

use crate::helpers::TestApp;

pub struct Shared {
    pub app: TestApp,
    pub llm: FakeLlm,
    runtime: tokio::runtime::Runtime,
}

pub const REPLY_PREFIX: &str = "Hello from the fake model";
pub const READY_WAIT: Duration = Duration::from_secs(300);

fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

/// Real-agent tests run one at a time: two OpenClaw agents (and Chromium) on two cores made
/// model runs outlast the tests' waits (a reply still "Thinking…" after 60 s).
fn agent_slots() -> &'static Semaphore {
    static SLOTS: Semaphore = Semaphore::const_new(1);
    &SLOTS
}

/// The real-agent slot, held for one test. Dropping it prints (uncaptured, so CI logs show
/// where the suite's time goes) how long the test waited for it and held it.
pub struct AgentSlot {
    _permit: tokio::sync::SemaphorePermit<'static>,
    test: &'static str,
    waited: Duration,
    since: std::time::Instant,
}

pub async fn agent_slot(test: &'static str) -> AgentSlot {
    let asked = std::time::Instant::now();
    let permit = agent_slots().acquire().await.unwrap();
    AgentSlot { _permit: permit, test, waited: asked.elapsed(), since: std::time::Instant::now() }
}

impl Drop for AgentSlot {
    fn drop(&mut self) {
        use std::io::Write;
        let line = format!(
            "[agent slot] {}: waited {:.0} s, held {:.0} s\n",
            self.test,
            self.waited.as_secs_f64(),
            self.since.elapsed().as_secs_f64()
        );
        let _ = std::io::stderr().write_all(line.as_bytes());
    }
}

/// Whether e2e tests can run here: they need npm (to install the runtime) unless it is installed.
pub fn available() -> bool {
    let runtime_ready = repo_root().join("target/agent-runtime/node_modules/openclaw").exists();
    let npm = std::process::Command::new("npm").arg("--version").output().is_ok_and(|o| o.status.success());
    if runtime_ready || npm {
        return true;
    }
    assert!(std::env::var("CI").map_or(true, |v| v != "true"), "e2e tests need npm in CI");
    eprintln!("SKIPPED e2e: npm is not installed");
    false
}

/// Starts a Roost server with the local provider on a runtime of its own.
pub fn start(llm_flags: bool) -> Shared {
    start_with(llm_flags, &[])
}

/// Like [`start`], with extra `roost serve` flags.
pub fn start_with(llm_flags: bool, extra: &[&str]) -> Shared {
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let (app, llm) = runtime.block_on(async {
        let llm = FakeLlm::spawn(FakeLlmOptions {
            api_key: "sk-operator".into(),
            chunk_delay: Duration::from_millis(120),
            ..FakeLlmOptions::default()
        })
        .await;
        let runtime_dir = repo_root().join("target/agent-runtime");
        let base = format!("{}/v1", llm.base_url());
        let runtime_dir = runtime_dir.to_str().unwrap().to_string();
        let mut flags = vec![
            "--agent-provider",
            "local",
            "--runtime-dir",
            &runtime_dir,
            "--agent-ready-timeout-secs",
            "240",
            "--no-prewarm",
            "--agent-exec-bin",
            env!("CARGO_BIN_EXE_roost"),
        ];
        if llm_flags {
            flags.extend([
                "--llm-openai-base-url",
                &base,
                "--llm-openai-api-key",
                "sk-operator",
                "--llm-model",
                "fake-model",
            ]);
        }
        flags.extend_from_slice(extra);
        (TestApp::spawn_with(&flags).await, llm)
    });
    Shared { app, llm, runtime }
}

pub fn shared() -> &'static Shared {
    static SHARED: OnceLock<Shared> = OnceLock::new();
    // Built on a thread of its own: a runtime cannot be started from inside a test's runtime.
    SHARED.get_or_init(|| std::thread::spawn(|| start(true)).join().unwrap())
}

impl Shared {
    /// Stops the agents gracefully, then the server and its runtime.
    pub fn stop(self) {
        let state = self.app.state.clone();
        self.on_server(async move { state.machines.shutdown().await });
        std::thread::spawn(move || drop(self)).join().unwrap();
    }

    /// Stops the server (its agents stop with it, as in production) and starts a new one on the
    /// same data.
    pub fn restart(self) -> Self {
        std::thread::spawn(move || {
            let Shared { app, llm, runtime } = self;
            let app = runtime.block_on(app.restart());
            Shared { app, llm, runtime }
        })
        .join()
        .unwrap()
    }

    /// Runs the future on the server's runtime (for state calls that must stay on it).
    pub fn on_server<F: std::future::Future + Send + 'static>(&self, f: F) -> F::Output
    where
        F::Output: Send + 'static,
    {
        let handle = self.runtime.handle().clone();
        std::thread::spawn(move || handle.block_on(f)).join().unwrap()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_user_chats_with_a_real_agent_and_resumes_mid_reply() {
    if !available() {
        return;
    }
    let shared = shared();
    let app = &shared.app;
    let _slot = agent_slot("a_new_user_chats_with_a_real_agent_and_resumes_mid_reply").await;
    let (cookie, user_id) = app.signed_up_cookie("e2e@example.com").await;
    let signed_up = std::time::Instant::now();
    let mut ws = app.ws(&cookie, "").await;
    ws.wait = READY_WAIT;
    let mut stages = Vec::new();
    let epoch = loop {
        let frame = tokio::time::timeout(READY_WAIT, ws.next()).await.expect("ready in time").expect("socket open");
        match frame["event"].as_str() {
            Some("roost.status") => stages.push(frame["payload"]["stage"].as_str().unwrap().to_string()),
            Some("roost.ready") => break frame["payload"]["epoch"].as_str().expect("an epoch").to_string(),
            _ => panic!("unexpected frame before ready: {frame}"),
        }
    };
    assert!(stages.iter().any(|s| s == "waiting_ready"), "real stages were shown: {stages:?}");
    assert!(stages.iter().any(|s| s == "starting"), "real stages were shown: {stages:?}");

    // A first turn, streamed from the real agent, through Roost's proxy to the fake LLM.
    ws.request(
        "first",
        "chat.send",
        json!({ "sessionKey": "main", "message": "hello", "idempotencyKey": "e2e-run-1" }),
    )
    .await;
    let mut deltas = 0;
    let first_reply = loop {
        let frame =
            tokio::time::timeout(Duration::from_secs(120), ws.next()).await.expect("reply in time").expect("open");
        if frame["event"] == "chat" && frame["payload"]["runId"] == "e2e-run-1" {
            match frame["payload"]["state"].as_str() {
                Some("delta") => deltas += 1,
                Some("final") => break frame["payload"]["message"]["content"][0]["text"].as_str().unwrap().to_string(),
                Some("error") => panic!("the agent failed: {frame}"),
                _ => {}
            }
        }
    };
    eprintln!("e2e: sign-up to first answer took {:.1} s", signed_up.elapsed().as_secs_f64());
    assert!(first_reply.starts_with(REPLY_PREFIX), "{first_reply}");
    assert!(deltas >= 2, "the answer streamed ({deltas} deltas)");

    // A second turn: drop the socket after the first delta, resume, and lose nothing.
    ws.request(
        "second",
        "chat.send",
        json!({ "sessionKey": "main", "message": "and again", "idempotencyKey": "e2e-run-2" }),
    )
    .await;
    let first_delta = ws
        .until("first delta", |f| {
            f["event"] == "chat" && f["payload"]["runId"] == "e2e-run-2" && f["payload"]["state"] == "delta"
        })
        .await;
    let seen = first_delta["roostSeq"].as_u64().unwrap();
    drop(ws);
    let mut ws = app.ws(&cookie, &format!("?resume={epoch}:{seen}")).await;
    ws.wait = READY_WAIT;
    ws.until_event("roost.ready").await;
    let mut expected = seen + 1;
    let resumed_final = loop {
        let frame =
            tokio::time::timeout(Duration::from_secs(120), ws.next()).await.expect("resume in time").expect("open");
        assert!(frame["event"] != "roost.gap", "no gap: the replay buffer covered the drop");
        if let Some(seq) = frame["roostSeq"].as_u64() {
            assert_eq!(seq, expected, "events arrive in order with none missing");
            expected += 1;
        }
        if frame["event"] == "chat" && frame["payload"]["runId"] == "e2e-run-2" && frame["payload"]["state"] == "final"
        {
            break frame["payload"]["message"]["content"][0]["text"].as_str().unwrap().to_string();
        }
    };
    assert!(resumed_final.starts_with(REPLY_PREFIX));

    // History reloads from the agent, and the turns were metered through the proxy.
    let history = app.json_as(&cookie, "/api/sessions/main/history").await;
    assert_eq!(history["stale"], false);
    let texts: Vec<&str> =
        history["messages"].as_array().unwrap().iter().map(|m| m["text"].as_str().unwrap()).collect();
    assert_eq!(texts.first(), Some(&"hello"));
    assert!(texts.contains(&"and again") && texts.contains(&resumed_final.as_str()), "{texts:?}");
    let calls = shared.llm.requests().into_iter().filter(|r| r.path.ends_with("/chat/completions")).count();
    assert!(calls >= 2, "the agent's model calls reached the upstream ({calls})");
    assert!(shared.llm.requests().iter().all(|r| r.header("authorization") == Some("Bearer sk-operator")));
    let used =
        app.sql(&format!("SELECT count(*) FROM usage_events WHERE user_id = '{user_id}' AND complete = 1")).await;
    assert!(matches!(used[0], libsql::Value::Integer(n) if n >= 2), "usage was recorded: {used:?}");
    let user = gateway::domain::UserId::parse(&user_id).unwrap();
    let token = gateway::agent_credentials::gateway_token(&app.state.secret, &user);
    assert!(!ws.all_bytes().contains(&token));

    // The relay's added latency per message, against a direct connection to the same agent.
    let address = app.state.machines.address_if_ready(&user).await.expect("agent running");
    let device = gateway::openclaw::DeviceIdentity::load_or_create(tempfile::tempdir().unwrap().path()).unwrap();
    let mut direct = gateway::openclaw::connect(&address, &token, &device).await.unwrap().socket;
    let mut via_roost = Vec::new();
    let mut straight = Vec::new();
    for i in 0..60 {
        let started = std::time::Instant::now();
        ws.request(&format!("h{i}"), "health", json!({})).await;
        ws.until("health", |f| f["type"] == "res" && f["id"] == format!("h{i}").as_str()).await;
        via_roost.push(started.elapsed());
        let started = std::time::Instant::now();
        direct_health(&mut direct, i).await;
        straight.push(started.elapsed());
    }
    let median = |v: &mut Vec<Duration>| {
        v.sort();
        v[v.len() / 2]
    };
    let (roost, direct_median) = (median(&mut via_roost), median(&mut straight));

    // A second chat lives on the agent until the user deletes it, then it is gone there too.
    let created: Value = app
        .send_as(&cookie, reqwest::Method::POST, "/api/sessions", Some(&json!({ "title": "Side chat" })))
        .await
        .json()
        .await
        .unwrap();
    let key = created["key"].as_str().unwrap().to_string();
    assert!(ws.chat(&key, "in a side chat").await.starts_with(REPLY_PREFIX));
    let on_agent = |list: &Value| {
        list["payload"]["sessions"].as_array().unwrap().iter().any(|s| s["key"] == format!("agent:main:{key}").as_str())
    };
    ws.request("list-1", "sessions.list", json!({})).await;
    assert!(on_agent(&ws.until("sessions", |f| f["id"] == "list-1").await), "the agent has the side chat");
    let res = app.send_as(&cookie, reqwest::Method::DELETE, &format!("/api/sessions/{key}"), None).await;
    assert_eq!(res.status(), 204);
    ws.request("list-2", "sessions.list", json!({})).await;
    assert!(
        !on_agent(&ws.until("sessions", |f| f["id"] == "list-2").await),
        "deleting the chat deleted it on the agent"
    );
    eprintln!(
        "e2e: health round trip to the real agent: via Roost {:.2} ms, direct {:.2} ms, added {:.2} ms (medians of 60)",
        roost.as_secs_f64() * 1e3,
        direct_median.as_secs_f64() * 1e3,
        (roost.as_secs_f64() - direct_median.as_secs_f64()) * 1e3
    );
}

async fn direct_health(socket: &mut gateway::openclaw::AgentSocket, i: usize) {
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message;
    let id = format!("d{i}");
    let frame = json!({ "type": "req", "id": id, "method": "health", "params": {} });
    socket.send(Message::text(frame.to_string())).await.unwrap();
    loop {
        let text = match socket.next().await {
            Some(Ok(Message::Text(text))) => text,
            Some(Ok(_)) => continue,
            other => panic!("the direct link ended: {other:?}"),
        };
        let v: Value = serde_json::from_str(text.as_str()).unwrap();
        if v["type"] == "res" && v["id"] == id.as_str() {
            return;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_model_the_agent_answers_with_a_clear_error() {
    if !available() {
        return;
    }
    let _slot = agent_slot("without_a_model_the_agent_answers_with_a_clear_error").await;
    let server = tokio::task::spawn_blocking(|| start(false)).await.unwrap();
    let app = &server.app;
    let (cookie, _) = app.signed_up_cookie("nomodel@example.com").await;
    let mut ws = app.ws(&cookie, "").await;
    ws.wait = READY_WAIT;
    tokio::time::timeout(READY_WAIT, ws.until_event("roost.ready")).await.expect("ready in time");
    ws.request("q", "chat.send", json!({ "sessionKey": "main", "message": "hello?", "idempotencyKey": "nomodel-1" }))
        .await;
    let error = tokio::time::timeout(
        Duration::from_secs(90),
        ws.until("an answer", |f| {
            f["event"] == "chat" && matches!(f["payload"]["state"].as_str(), Some("error" | "final"))
        }),
    )
    .await
    .expect("an answer in time");
    let text = error.to_string();
    assert_eq!(error["payload"]["state"], "error", "{text}");
    assert!(text.contains("No model is configured"), "the error says why: {text}");
    drop(ws);
    server.stop();
}
