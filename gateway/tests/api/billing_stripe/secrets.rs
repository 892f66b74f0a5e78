//! The Stripe key and the webhook secret never reach a browser or a log line: the real `roost`
//! binary at debug level through a checkout, a failing Stripe, a refused and an accepted
//! webhook, and the worker's sync.

use std::process::Stdio;
use std::time::Duration;

use fakes::stripe::{FakeStripe, FakeStripeOptions, Fault};
use gateway::domain::now_secs;
use serde_json::{Value, json};
use tokio::io::AsyncReadExt;

use super::{PRO, SECRET_KEY, WEBHOOK_SECRET, plans_file};
use crate::helpers::wait_until;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_stripe_secrets_never_reach_a_response_or_a_log_line() {
    let stripe = FakeStripe::spawn(FakeStripeOptions {
        secret_key: SECRET_KEY.into(),
        webhook_secret: WEBHOOK_SECRET.into(),
        now: now_secs(),
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let origin = format!("http://127.0.0.1:{port}");
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_roost"))
        .args(["serve", "--listen", &format!("127.0.0.1:{port}"), "--agent-provider", "fake", "--plans", plans_file()])
        .args(["--stripe-api-base", &stripe.base_url(), "--stripe-timeout-secs", "1"])
        .arg("--data-dir")
        .arg(dir.path())
        .env("RUST_LOG", "debug")
        .env("ROOST_STRIPE_SECRET_KEY", SECRET_KEY)
        .env("ROOST_STRIPE_WEBHOOK_SECRET", WEBHOOK_SECRET)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    stripe.set_webhook_url(&format!("{origin}/webhooks/stripe"));
    let http = reqwest::Client::new();
    wait_until("roost serve answers", || async {
        http.get(format!("{origin}/readyz")).send().await.is_ok_and(|r| r.status() == 200)
    })
    .await;
    let mut bodies = String::new();
    let res = http
        .post(format!("{origin}/api/auth/signup"))
        .header("Origin", &origin)
        .json(&json!({ "email": "secret@example.com", "password": "password-for-the-stripe-run" }))
        .send()
        .await
        .unwrap();
    let cookie = res.headers()["set-cookie"].to_str().unwrap().split(';').next().unwrap().to_string();
    let send = |path: &'static str, body: Value| {
        let request = http.post(format!("{origin}{path}")).header("Origin", &origin).header("cookie", &cookie);
        async move { request.json(&body).send().await.unwrap().text().await.unwrap() }
    };
    stripe.fail_next("/v1/checkout/sessions", Fault::Status(402));
    bodies += &send("/api/billing/checkout", json!({ "plan": PRO })).await;
    bodies += &send("/api/billing/checkout", json!({ "plan": PRO })).await;
    let session = bodies.rsplit("/c/pay/").next().unwrap().trim_end_matches(['"', '}']).to_string();
    let events = stripe.complete_checkout(&session);
    let bad = http
        .post(format!("{origin}/webhooks/stripe"))
        .header("stripe-signature", fakes::stripe::sign("whsec_wrong", events[0].body.as_bytes(), now_secs()))
        .body(events[0].body.clone())
        .send()
        .await
        .unwrap();
    bodies += &bad.text().await.unwrap();
    stripe.deliver_all(&events).await;
    let billing = || {
        let request = http.get(format!("{origin}/api/billing")).header("cookie", &cookie);
        async move { request.send().await.unwrap().text().await.unwrap() }
    };
    wait_until("the worker synced the subscription", || async { billing().await.contains("\"name\":\"Pro\"") }).await;
    bodies += &billing().await;
    bodies += &send("/api/billing/portal", json!({})).await;

    let pid = child.id().unwrap() as i32;
    std::process::Command::new("kill").arg(pid.to_string()).status().unwrap();
    let _ = tokio::time::timeout(Duration::from_secs(15), child.wait()).await;
    let mut logs = String::new();
    child.stderr.take().unwrap().read_to_string(&mut logs).await.unwrap();
    child.stdout.take().unwrap().read_to_string(&mut logs).await.unwrap();
    assert!(logs.contains("Stripe event stored") && logs.contains("a Stripe call failed"), "the logs covered the run");
    assert!(logs.contains("a Stripe webhook was refused"), "the refusal was logged");
    assert!(bodies.contains("billing.stripe.com") && bodies.contains("stripe_refused"), "{bodies}");
    for (what, secret) in [("secret key", SECRET_KEY), ("webhook secret", WEBHOOK_SECRET)] {
        assert!(!logs.contains(secret), "the {what} appeared in the logs");
        assert!(!bodies.contains(secret), "the {what} appeared in a response");
        // Not even a good part of it.
        assert!(!logs.contains(&secret[8..24]), "part of the {what} appeared in the logs");
    }
}
