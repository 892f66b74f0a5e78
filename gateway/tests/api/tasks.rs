//! The task API with the simulated agent: lifecycle, tool calls, cancel, limits, input checks,
//! who sees what, and the signed completion webhook with its retries and address checks.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use gateway::machines::simulated::Reply;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{TestApp, error_code, wait_until_within};

/// A signed-up user's API token and webhook secret.
pub struct Scripter {
    pub token: String,
    pub webhook_secret: String,
    pub user_id: String,
    pub cookie: String,
}

pub async fn scripter(app: &TestApp, email: &str) -> Scripter {
    let (cookie, user_id) = app.signed_up_cookie(email).await;
    let res = app.send_as(&cookie, reqwest::Method::POST, "/api/tokens", Some(&json!({"name": "ci"}))).await;
    assert_eq!(res.status(), 201);
    let body: Value = res.json().await.unwrap();
    Scripter {
        token: body["token"].as_str().unwrap().to_string(),
        webhook_secret: body["webhook_secret"].as_str().expect("a webhook secret, shown once").to_string(),
        user_id,
        cookie,
    }
}

pub async fn submit(app: &TestApp, token: &str, body: &Value) -> reqwest::Response {
    reqwest::Client::new().post(app.url("/api/v1/tasks")).bearer_auth(token).json(body).send().await.unwrap()
}

pub async fn submitted(app: &TestApp, token: &str, body: &Value) -> String {
    let res = submit(app, token, body).await;
    assert_eq!(res.status(), 202, "{:?}", res.text().await);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["status"], "queued");
    body["id"].as_str().unwrap().to_string()
}

pub async fn task(app: &TestApp, token: &str, id: &str) -> Value {
    app.json_bearer(token, &format!("/api/v1/tasks/{id}")).await
}

pub async fn finished(app: &TestApp, token: &str, id: &str, within: Duration) -> Value {
    let mut last = Value::Null;
    let deadline = std::time::Instant::now() + within;
    while std::time::Instant::now() < deadline {
        last = task(app, token, id).await;
        if ["completed", "failed", "cancelled"].contains(&last["status"].as_str().unwrap_or_default()) {
            return last;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the task did not finish in time: {last}");
}

async fn cancel(app: &TestApp, token: &str, id: &str) -> reqwest::Response {
    reqwest::Client::new().post(app.url(&format!("/api/v1/tasks/{id}/cancel"))).bearer_auth(token).send().await.unwrap()
}

async fn simulated_agent(app: &TestApp, user_id: &str) -> Arc<gateway::machines::simulated::SimulatedAgent> {
    let simulated = app.state.machines.simulated().expect("simulated provider");
    for _ in 0..200 {
        if let Some(agent) = simulated.agent(user_id).await {
            return agent;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the agent did not come up")
}

fn long_reply() -> Reply {
    Reply::Text((0..600).map(|i| format!("word{i} ")).collect())
}

#[tokio::test]
async fn a_task_wakes_the_agent_runs_in_its_own_chat_and_completes_with_the_reply() {
    let app = TestApp::spawn_with(&["--no-prewarm"]).await;
    let me = scripter(&app, "ci@example.com").await;
    assert!(!app.state.machines.is_up(&gateway::domain::UserId::parse(&me.user_id).unwrap()).await);
    let id = submitted(&app, &me.token, &json!({"prompt": "/tool ls -la"})).await;
    let done = finished(&app, &me.token, &id, Duration::from_secs(30)).await;
    assert_eq!(done["status"], "completed", "{done}");
    assert_eq!(
        done["text"],
        "Hello from your simulated agent. Install OpenClaw with the local provider for a real one."
    );
    assert_eq!(done["tool_calls"][0]["name"], "exec", "{done}");
    assert_eq!(done["tool_calls"][0]["args"]["command"], "ls -la");
    assert_eq!(done["tool_calls"][0]["status"], "ok");
    assert!(done["started_at"].as_i64().unwrap() >= done["created_at"].as_i64().unwrap());
    assert!(done["finished_at"].as_i64().is_some());
    assert_eq!(done["credits_used"], 0, "the simulated agent calls no model");
    let session = done["session"].as_str().unwrap();
    assert_ne!(session, "main", "a chat of its own");
    // The chat is the user's, with the prompt and the reply in it.
    let history = app.json_as(&me.cookie, &format!("/api/sessions/{session}/history")).await;
    assert!(history.to_string().contains("/tool ls -la"), "{history}");

    // A named chat is used as it is.
    let id = submitted(&app, &me.token, &json!({"prompt": "into main", "session": "main"})).await;
    let done = finished(&app, &me.token, &id, Duration::from_secs(30)).await;
    assert_eq!((done["status"].as_str(), done["session"].as_str()), (Some("completed"), Some("main")));

    // Listed newest first, filtered, paged.
    let all = app.json_bearer(&me.token, "/api/v1/tasks?limit=1").await;
    assert_eq!(all["tasks"][0]["id"], id);
    let cursor = all["next_cursor"].as_str().unwrap();
    let next = app.json_bearer(&me.token, &format!("/api/v1/tasks?limit=1&cursor={cursor}")).await;
    assert_eq!(next["tasks"].as_array().unwrap().len(), 1);
    assert_ne!(next["tasks"][0]["id"], id);
    let none = app.json_bearer(&me.token, "/api/v1/tasks?status=failed").await;
    assert_eq!(none["tasks"], json!([]));
}

#[tokio::test]
async fn a_running_task_is_cancelled_with_chat_abort_and_a_queued_one_at_once() {
    let app = TestApp::spawn().await;
    let me = scripter(&app, "cancel@example.com").await;
    let warm = submitted(&app, &me.token, &json!({"prompt": "warm up"})).await;
    finished(&app, &me.token, &warm, Duration::from_secs(30)).await;
    let agent = simulated_agent(&app, &me.user_id).await;
    agent.set_reply(long_reply());

    let id = submitted(&app, &me.token, &json!({"prompt": "a long one"})).await;
    wait_until_within("it runs", Duration::from_secs(20), || async {
        task(&app, &me.token, &id).await["status"] == "running"
    })
    .await;
    // Running counts as agent activity: the idle watch would not stop it.
    let user = gateway::domain::UserId::parse(&me.user_id).unwrap();
    wait_until_within("the run is seen as activity", Duration::from_secs(10), || async {
        app.state.machines.activity().is_busy(&user)
    })
    .await;
    let res = cancel(&app, &me.token, &id).await;
    assert_eq!(res.status(), 202);
    let done = finished(&app, &me.token, &id, Duration::from_secs(20)).await;
    assert_eq!(done["status"], "cancelled", "{done}");
    assert_eq!(done["error"], "Cancelled while it ran.", "the agent confirmed the abort: {done}");
    assert_eq!(done["text"], Value::Null);
    assert!(!app.state.machines.activity().is_busy(&user), "the run ended");
    // Cancelling again: it is over.
    assert_eq!(error_code(cancel(&app, &me.token, &id).await).await, (409, "task_finished".into()));
}

#[tokio::test]
async fn tasks_need_an_api_token_and_one_user_never_sees_anothers() {
    let app = TestApp::spawn().await;
    let alice = scripter(&app, "alice@example.com").await;
    let bob = scripter(&app, "bob@example.com").await;
    let id = submitted(&app, &alice.token, &json!({"prompt": "alice's secret"})).await;

    // A browser session may read tasks but not submit them; nobody else may do either.
    let res = app.send_as(&alice.cookie, reqwest::Method::POST, "/api/v1/tasks", Some(&json!({"prompt": "x"}))).await;
    assert_eq!(error_code(res).await, (403, "api_token_required".into()));
    let res = reqwest::Client::new()
        .post(app.url("/api/v1/tasks"))
        .header("Origin", &app.origin)
        .json(&json!({"prompt": "x"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);
    let res = submit(&app, "rst_not_a_real_token_at_all_0000000000000000", &json!({"prompt": "x"})).await;
    assert_eq!(res.status(), 401);

    let res = reqwest::Client::new().get(app.url(&format!("/api/v1/tasks/{id}"))).bearer_auth(&bob.token).send().await;
    assert_eq!(error_code(res.unwrap()).await, (404, "not_found".into()));
    assert_eq!(error_code(cancel(&app, &bob.token, &id).await).await, (404, "not_found".into()));
    let listed = app.json_bearer(&bob.token, "/api/v1/tasks").await;
    assert_eq!(listed["tasks"], json!([]), "{listed}");
    let mine = app.json_bearer(&alice.token, "/api/v1/tasks").await;
    assert_eq!(mine["tasks"][0]["id"], id);
    let own = app.json_as(&alice.cookie, &format!("/api/v1/tasks/{id}")).await;
    assert_eq!(own["prompt"], "alice's secret");
}

#[tokio::test]
async fn bad_input_is_refused_in_sentences() {
    let app = TestApp::spawn().await;
    let me = scripter(&app, "input@example.com").await;
    let cases = [
        (json!({"prompt": ""}), 400, "invalid_prompt"),
        (json!({"prompt": "   \n"}), 400, "invalid_prompt"),
        (json!({"prompt": "a".repeat(32 * 1024 + 1)}), 400, "invalid_prompt"),
        (json!({"prompt": "nul\u{0}"}), 400, "invalid_prompt"),
        (json!({"prompt": "a".repeat(70 * 1024)}), 413, "body_too_large"),
        (json!({"prompt": "x", "session": "../etc"}), 400, "invalid_session"),
        (json!({"prompt": "x", "webhook_url": "ftp://example.com/x"}), 400, "invalid_webhook_url"),
        (json!({"prompt": "x", "webhook_url": "not a url"}), 400, "invalid_webhook_url"),
        (json!({"prompt": "x", "webhook_url": "https://u:p@example.com/"}), 400, "invalid_webhook_url"),
        (json!({"prompt": "x", "colour": "blue"}), 400, "invalid_json"),
        (json!({"session": "main"}), 400, "invalid_json"),
    ];
    for (body, status, code) in cases {
        let res = submit(&app, &me.token, &body).await;
        let (got_status, got_code) = error_code(res).await;
        assert_eq!(
            (got_status, got_code.as_str()),
            (status, code),
            "{}",
            &body.to_string()[..60.min(body.to_string().len())]
        );
    }
    for query in ["status=done", "limit=0", "limit=101", "cursor=garbage"] {
        let res = reqwest::Client::new()
            .get(app.url(&format!("/api/v1/tasks?{query}")))
            .bearer_auth(&me.token)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 400, "{query}");
    }
    let res = reqwest::Client::new().get(app.url("/api/v1/tasks/not-a-uuid")).bearer_auth(&me.token).send().await;
    assert_eq!(res.unwrap().status(), 404);
    assert_eq!(app.count("tasks").await, 0, "nothing was queued");
}

#[tokio::test]
async fn each_token_has_a_rate_limit_and_a_concurrency_limit() {
    let app = TestApp::spawn_with(&["--task-rate-per-token", "3", "--task-concurrency-per-token", "1"]).await;
    let me = scripter(&app, "limits@example.com").await;
    let warm = submitted(&app, &me.token, &json!({"prompt": "warm"})).await;
    finished(&app, &me.token, &warm, Duration::from_secs(30)).await;
    simulated_agent(&app, &me.user_id).await.set_reply(long_reply());
    let running = submitted(&app, &me.token, &json!({"prompt": "long"})).await;
    // One open task per token: the next waits for it.
    let res = submit(&app, &me.token, &json!({"prompt": "second"})).await;
    assert_eq!(res.headers().get("retry-after").map(|v| v.to_str().unwrap().to_string()), Some("5".into()));
    assert_eq!(error_code(res).await, (429, "too_many_tasks".into()));
    // Another token of the same user has limits of its own.
    let other = app.send_as(&me.cookie, reqwest::Method::POST, "/api/tokens", Some(&json!({"name": "b"}))).await;
    let other = other.json::<Value>().await.unwrap()["token"].as_str().unwrap().to_string();
    submitted(&app, &other, &json!({"prompt": "from the other token"})).await;
    // Three submissions a minute: the fourth is refused even though the queue has room.
    cancel(&app, &me.token, &running).await;
    finished(&app, &me.token, &running, Duration::from_secs(20)).await;
    let res = submit(&app, &me.token, &json!({"prompt": "fourth"})).await;
    assert_eq!(error_code(res).await, (429, "rate_limited".into()));
}

/// A webhook receiver: answers the first `fail_first` deliveries with 500, then 200.
pub struct Receiver {
    pub url: String,
    /// Each delivery's `Roost-Signature` header and raw body.
    pub got: Arc<Mutex<Vec<(String, String)>>>,
}

pub async fn receiver(fail_first: usize) -> Receiver {
    use axum::http::HeaderMap;
    let got: Arc<Mutex<Vec<(String, String)>>> = Arc::default();
    let seen = got.clone();
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |headers: HeaderMap, body: String| {
            let seen = seen.clone();
            async move {
                let signature = headers.get("roost-signature").map(|v| v.to_str().unwrap().to_string());
                let mut seen = seen.lock().unwrap();
                seen.push((signature.unwrap_or_default(), body));
                if seen.len() <= fail_first { StatusCode::INTERNAL_SERVER_ERROR } else { StatusCode::OK }
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    Receiver { url, got }
}

/// Checks a `Roost-Signature` as a receiver would: HMAC-SHA256(secret, "t.body"), hex.
fn signature_verifies(secret: &str, header: &str, body: &str) -> bool {
    let mut t = None;
    let mut v1 = None;
    for part in header.split(',') {
        match part.split_once('=') {
            Some(("t", value)) => t = Some(value),
            Some(("v1", value)) => v1 = Some(value),
            _ => {}
        }
    }
    let (Some(t), Some(v1)) = (t, v1) else { return false };
    let expected = gateway::crypto::hmac_sha256(secret.as_bytes(), format!("{t}.{body}").as_bytes());
    hex::decode(v1).is_ok_and(|tag| gateway::crypto::same_secret(&tag, &expected))
}

#[tokio::test]
async fn the_completion_webhook_is_signed_and_retried_after_a_500() {
    let app = TestApp::spawn_with(&["--allow-private-webhooks"]).await;
    let me = scripter(&app, "hooks@example.com").await;
    let hook = receiver(1).await;
    let id = submitted(&app, &me.token, &json!({"prompt": "hello", "webhook_url": hook.url})).await;
    finished(&app, &me.token, &id, Duration::from_secs(30)).await;
    wait_until_within("delivered after one retry", Duration::from_secs(20), || async {
        hook.got.lock().unwrap().len() >= 2
    })
    .await;
    let got = hook.got.lock().unwrap().clone();
    for (signature, body) in &got {
        assert!(signature_verifies(&me.webhook_secret, signature, body), "{signature} over {body}");
        assert!(!signature_verifies("whsec_wrong", signature, body));
        let body: Value = serde_json::from_str(body).unwrap();
        assert_eq!(body["type"], "task.completed");
        assert_eq!(body["task"]["id"], id);
        assert!(body["task"]["text"].as_str().unwrap().starts_with("Hello from your simulated agent"));
    }
    // Delivered: no third attempt.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(hook.got.lock().unwrap().len(), 2);
    assert_eq!(app.count("task_webhooks WHERE delivered_at IS NOT NULL AND attempts = 2").await, 1);
    // The secret is stored sealed, never as its text.
    assert!(!crate::helpers::contains(&app.db_bytes(), &me.webhook_secret));

    // A new secret for the token, shown once; the old one no longer signs.
    let tokens = app.json_as(&me.cookie, "/api/tokens").await;
    let token_id = tokens["tokens"][0]["id"].as_str().unwrap();
    assert!(tokens.to_string().find("whsec_").is_none(), "listing shows no secret");
    let res =
        app.send_as(&me.cookie, reqwest::Method::POST, &format!("/api/tokens/{token_id}/webhook-secret"), None).await;
    assert_eq!(res.status(), 200);
    let rotated = res.json::<Value>().await.unwrap()["webhook_secret"].as_str().unwrap().to_string();
    let hook2 = receiver(0).await;
    let id = submitted(&app, &me.token, &json!({"prompt": "again", "webhook_url": hook2.url})).await;
    finished(&app, &me.token, &id, Duration::from_secs(30)).await;
    wait_until_within("delivered", Duration::from_secs(20), || async { !hook2.got.lock().unwrap().is_empty() }).await;
    let (signature, body) = hook2.got.lock().unwrap()[0].clone();
    assert!(signature_verifies(&rotated, &signature, &body));
    assert!(!signature_verifies(&me.webhook_secret, &signature, &body));
}

#[tokio::test]
async fn webhooks_to_internal_addresses_are_refused() {
    let app = TestApp::spawn().await;
    let me = scripter(&app, "ssrf@example.com").await;
    let hook = receiver(0).await;
    for url in [
        hook.url.as_str(),
        "http://localhost:9/hook",
        "http://127.0.0.1/hook",
        "http://0.0.0.0/hook",
        "http://10.1.2.3/hook",
        "http://172.16.0.1/hook",
        "http://192.168.0.1/hook",
        "http://169.254.169.254/latest/meta-data/",
        "http://100.64.0.1/hook",
        "http://[::1]/hook",
        "http://[::]/hook",
        "http://[fd00:ec2::254]/hook",
        "http://[fe80::1]/hook",
        "http://[::ffff:127.0.0.1]/hook",
        "http://2130706433/hook",
    ] {
        let res = submit(&app, &me.token, &json!({"prompt": "x", "webhook_url": url})).await;
        let (status, code) = error_code(res).await;
        assert_eq!((status, code.as_str()), (400, "invalid_webhook_url"), "{url}");
    }
    assert_eq!(app.count("tasks").await, 0);
    assert!(hook.got.lock().unwrap().is_empty());
}

#[tokio::test]
async fn across_a_restart_a_queued_task_runs_and_a_running_one_fails_with_a_sentence() {
    let app = TestApp::spawn_with(&["--no-prewarm"]).await;
    let me = scripter(&app, "restart@example.com").await;
    let warm = submitted(&app, &me.token, &json!({"prompt": "warm"})).await;
    finished(&app, &me.token, &warm, Duration::from_secs(30)).await;
    simulated_agent(&app, &me.user_id).await.set_reply(long_reply());
    let running = submitted(&app, &me.token, &json!({"prompt": "long"})).await;
    wait_until_within("it runs", Duration::from_secs(20), || async {
        task(&app, &me.token, &running).await["status"] == "running"
    })
    .await;
    // Another user's agent starts slowly: their task is still queued when Roost stops.
    let other = scripter(&app, "restart-other@example.com").await;
    app.state.machines.simulated().unwrap().set_stage_delay(Duration::from_secs(60));
    let queued = submitted(&app, &other.token, &json!({"prompt": "waiting"})).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(task(&app, &other.token, &queued).await["status"], "queued");

    let app = app.restart().await;
    let failed = task(&app, &me.token, &running).await;
    assert_eq!(failed["status"], "failed", "{failed}");
    assert_eq!(failed["error"], gateway::tasks::RESTARTED);
    let done = finished(&app, &other.token, &queued, Duration::from_secs(30)).await;
    assert_eq!(done["status"], "completed", "the queued task ran after the restart: {done}");
}
