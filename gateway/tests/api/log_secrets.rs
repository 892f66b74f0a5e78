//! Runs the real `roost` binary with debug logging through a whole session, then scans every
//! log line for the secrets that passed through it.

use std::process::Stdio;
use std::time::Duration;

use fakes::llm::{FakeLlm, FakeLlmOptions};
use serde_json::{Value, json};
use tokio::io::AsyncReadExt;

use crate::helpers::wait_until;
use crate::ws::Client;

const OPERATOR_KEY: &str = "sk-operator-never-logged-4242";
const SECRET_KEY: &str = "1111111111111111111111111111111111111111111111111111111111111111";
const PASSWORD: &str = "password-never-logged-7777";
const METRICS_TOKEN: &str = "metrics-token-never-logged-5555";
const USER_LLM_KEY: &str = "sk-ant-own-key-never-logged-3333";
const REFUSED_LLM_KEY: &str = "sk-ant-refused-key-never-logged-2222";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logs_never_contain_a_credential() {
    let llm = FakeLlm::spawn(FakeLlmOptions { api_key: OPERATOR_KEY.into(), ..FakeLlmOptions::default() }).await;
    let dir = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let listen = format!("127.0.0.1:{port}");
    let origin = format!("http://{listen}");
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_roost"))
        .args([
            "serve",
            "--listen",
            &listen,
            "--agent-provider",
            "fake",
            "--secret-key",
            SECRET_KEY,
            "--llm-model",
            "m",
        ])
        .arg("--data-dir")
        .arg(dir.path())
        .args(["--llm-openai-base-url", &format!("{}/v1", llm.base_url()), "--llm-openai-api-key", OPERATOR_KEY])
        .env("RUST_LOG", "debug")
        .env("ROOST_METRICS_TOKEN", METRICS_TOKEN)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let http = reqwest::Client::new();
    wait_until("roost serve answers", || async {
        http.get(format!("{origin}/readyz")).send().await.is_ok_and(|r| r.status() == 200)
    })
    .await;

    let res = http
        .post(format!("{origin}/api/auth/signup"))
        .header("Origin", &origin)
        .json(&json!({ "email": "logs@example.com", "password": PASSWORD }))
        .send()
        .await
        .unwrap();
    let cookie = res.headers()["set-cookie"].to_str().unwrap().split(';').next().unwrap().to_string();
    let user_id = res.json::<Value>().await.unwrap()["user"]["id"].as_str().unwrap().to_string();
    let login = http
        .post(format!("{origin}/api/auth/login"))
        .header("Origin", &origin)
        .json(&json!({ "email": "logs@example.com", "password": PASSWORD }))
        .send()
        .await
        .unwrap();
    let login_cookie = login.headers()["set-cookie"].to_str().unwrap().split(';').next().unwrap().to_string();
    let token: Value = http
        .post(format!("{origin}/api/tokens"))
        .header("Origin", &origin)
        .header("cookie", &login_cookie)
        .json(&json!({ "name": "t" }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let api_token = token["token"].as_str().unwrap().to_string();
    assert_eq!(http.get(format!("{origin}/api/me")).bearer_auth(&api_token).send().await.unwrap().status(), 200);

    let mut ws =
        Client::connect(&format!("ws://{listen}/ws"), &[("cookie", &login_cookie), ("origin", &origin)]).await.unwrap();
    ws.ready().await;
    ws.chat("main", "hello").await;

    let secret = gateway::secret::ServerSecret::from_bytes([0x11; 32]);
    let user = gateway::domain::UserId::parse(&user_id).unwrap();
    let llm_credential = gateway::agent_credentials::llm_credential(&secret, &user);
    let gateway_token = gateway::agent_credentials::gateway_token(&secret, &user);
    let res = http
        .post(format!("{origin}/llm/openai/v1/chat/completions"))
        .bearer_auth(&llm_credential)
        .json(&json!({ "model": "m", "messages": [{ "role": "user", "content": "hi" }], "stream": true }))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200, "the proxy call went through");
    res.text().await.unwrap();

    // The user's own key: refused, then saved, then used for a model call.
    llm.accept_key(USER_LLM_KEY);
    for (key, status) in [(REFUSED_LLM_KEY, 422), (USER_LLM_KEY, 200)] {
        let res = http
            .put(format!("{origin}/api/me/llm-key"))
            .header("Origin", &origin)
            .header("cookie", &login_cookie)
            .json(&json!({ "provider": "openai", "key": key, "model": "fake-model" }))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), status, "saving the own key {key}");
    }
    let res = http
        .post(format!("{origin}/llm/openai/v1/chat/completions"))
        .bearer_auth(&llm_credential)
        .json(&json!({ "model": "m", "messages": [{ "role": "user", "content": "hi" }] }))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200, "the call with the user's own key went through");
    res.text().await.unwrap();
    assert_eq!(llm.requests().last().unwrap().header("authorization"), Some(&*format!("Bearer {USER_LLM_KEY}")));
    let metrics = http.get(format!("{origin}/metrics")).bearer_auth(METRICS_TOKEN).send().await.unwrap();
    assert_eq!(metrics.status(), 200);
    // The model call's usage is recorded after its answer: the last thing this session logs.
    let db = libsql::Builder::new_local(dir.path().join("roost.db")).build().await.unwrap();
    let conn = db.connect().unwrap();
    wait_until("the model call's usage is recorded", || async {
        let mut rows = conn.query("SELECT count(*) FROM usage_events WHERE complete = 1", ()).await.unwrap();
        rows.next().await.unwrap().is_some_and(|row| row.get::<i64>(0).unwrap() >= 2)
    })
    .await;

    // Stop it with SIGTERM, as an operator would, so every buffered log line is written.
    let pid = child.id().unwrap() as i32;
    std::process::Command::new("kill").arg(pid.to_string()).status().unwrap();
    let _ = tokio::time::timeout(Duration::from_secs(15), child.wait()).await;
    let mut logs = String::new();
    child.stderr.take().unwrap().read_to_string(&mut logs).await.unwrap();
    child.stdout.take().unwrap().read_to_string(&mut logs).await.unwrap();

    assert!(
        logs.contains("account created") && logs.contains("/llm/openai/v1/chat/completions"),
        "the logs covered the session"
    );
    let plain = plain_text(&logs);
    let start = plain.lines().find(|l| l.contains("Roost is serving")).expect("a start line");
    for field in [&format!("listen={listen}") as &str, "database=local ", "provider=Fake", "model=m ", "metrics=on"] {
        assert!(start.contains(field), "{field} missing from the start line: {start}");
    }
    let me_line = plain
        .lines()
        .find(|l| l.contains("route=/api/me") && l.contains("status=200") && l.contains("duration_ms="))
        .unwrap_or_else(|| panic!("no request line for /api/me in:\n{logs}"));
    assert!(me_line.contains(&format!("user_id={user_id}")) && me_line.contains("method=GET"), "{me_line}");
    let session_secret = cookie.split('=').nth(1).unwrap();
    let login_secret = login_cookie.split('=').nth(1).unwrap();
    for (what, secret) in [
        ("operator key", OPERATOR_KEY),
        ("server secret", SECRET_KEY),
        ("password", PASSWORD),
        ("session cookie", session_secret),
        ("login cookie", login_secret),
        ("API token", api_token.as_str()),
        ("agent LLM credential", llm_credential.as_str()),
        ("agent gateway token", gateway_token.as_str()),
        ("metrics token", METRICS_TOKEN),
        ("user's own LLM key", USER_LLM_KEY),
        ("refused own LLM key", REFUSED_LLM_KEY),
    ] {
        assert!(!logs.contains(secret), "the {what} appeared in the logs");
    }
}

/// The log as text without colour codes or quotes, so fields read `name=value`.
fn plain_text(logs: &str) -> String {
    let mut out = String::with_capacity(logs.len());
    let mut chars = logs.chars();
    while let Some(c) = chars.next() {
        match c {
            '\u{1b}' => {
                for c in chars.by_ref() {
                    if c == 'm' {
                        break;
                    }
                }
            }
            '"' => {}
            c => out.push(c),
        }
    }
    out
}
