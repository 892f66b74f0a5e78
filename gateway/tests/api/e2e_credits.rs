//! Credits with the real OpenClaw agent: its model call is debited at the model's price, and
//! once the credits are gone the chat says so in Roost's words, not the agent's "request failed";
//! and once a pack is bought the very next message works.

use std::time::Duration;

use crate::e2e_openclaw::{READY_WAIT, REPLY_PREFIX, agent_slot, available, start_with};
use fakes::stripe::{FakeStripe, FakeStripeOptions};

use crate::billing_stripe::{SECRET_KEY, WEBHOOK_SECRET};
use crate::helpers::wait_until_within;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_real_agents_model_calls_are_debited_and_out_of_credits_shows_in_the_chat() {
    if !available() {
        return;
    }
    let _slot = agent_slot("a_real_agents_model_calls_are_debited_and_out_of_credits_shows_in_the_chat").await;
    let dir = tempfile::tempdir().unwrap();
    // One credit a month: the first call goes (and costs far more), the next is refused.
    let plans = crate::helpers::plans_file(dir.path(), 1, "fake-model");
    // A pack big enough for the agent's prompt, sold through a fake Stripe.
    let mut text = std::fs::read_to_string(&plans).unwrap();
    text.push_str("[packs.price_e2e_pack]\nname = \"E2E pack\"\ncredits = 10_000_000\n");
    std::fs::write(&plans, text).unwrap();
    let stripe = FakeStripe::spawn(FakeStripeOptions {
        secret_key: SECRET_KEY.into(),
        webhook_secret: WEBHOOK_SECRET.into(),
        now: gateway::domain::now_secs(),
    })
    .await;
    let stripe_base = stripe.base_url();
    let server = tokio::task::spawn_blocking(move || {
        start_with(
            true,
            &[
                "--plans",
                &plans,
                "--stripe-secret-key",
                SECRET_KEY,
                "--stripe-webhook-secret",
                WEBHOOK_SECRET,
                "--stripe-api-base",
                &stripe_base,
            ],
        )
    })
    .await
    .unwrap();
    let app = &server.app;
    let (cookie, _) = app.signed_up_cookie("spender@example.com").await;
    let mut ws = app.ws(&cookie, "").await;
    ws.wait = READY_WAIT;
    ws.ready().await;
    ws.wait = Duration::from_secs(120);
    let reply = ws.chat("main", "spend my only credit").await;
    assert!(reply.starts_with(REPLY_PREFIX), "{reply}");

    // Charged exactly at the price for the tokens the provider reported.
    wait_until_within("the call is debited", Duration::from_secs(30), || async {
        let billing = app.json_as(&cookie, "/api/billing").await;
        billing["usage"]["recent"].as_array().is_some_and(|r| !r.is_empty())
    })
    .await;
    let row = app
        .sql("SELECT input_tokens || '|' || output_tokens || '|' || credits || '|' || from_grants FROM usage_events")
        .await;
    let libsql::Value::Text(row) = &row[0] else { panic!("{row:?}") };
    let n: Vec<i64> = row.split('|').map(|v| v.parse().unwrap()).collect();
    assert_eq!(n[2], n[0] + 2 * n[1], "credits = 1 per prompt token + 2 per reply token: {row}");
    assert_eq!(n[3], 1, "the one credit left was taken: {row}");
    assert_eq!(app.json_as(&cookie, "/api/billing").await["balance"], 0);

    // The next message: the model call is refused before it goes upstream, and the chat says why.
    let calls_before = server.llm.requests().len();
    let run = uuid::Uuid::new_v4().to_string();
    ws.request(
        "broke",
        "chat.send",
        serde_json::json!({ "sessionKey": "main", "message": "and another", "idempotencyKey": run }),
    )
    .await;
    let error = ws.until("error", |f| f["event"] == "chat" && f["payload"]["state"] == "error").await;
    let message = error["payload"]["errorMessage"].as_str().unwrap_or_default();
    assert!(message.starts_with("You're out of credits"), "{error}");
    assert_eq!(error["payload"]["errorKind"], "out_of_credits");
    assert_eq!(server.llm.requests().len(), calls_before, "nothing reached the provider");

    // A pack is bought (Checkout completed, its webhook delivered): the very next message works.
    stripe.set_webhook_url(&app.url("/webhooks/stripe"));
    let res = app
        .send_as(
            &cookie,
            reqwest::Method::POST,
            "/api/billing/checkout",
            Some(&serde_json::json!({"pack": "price_e2e_pack"})),
        )
        .await;
    assert_eq!(res.status(), 200);
    let url = res.json::<serde_json::Value>().await.unwrap()["url"].as_str().unwrap().to_string();
    stripe.deliver_all(&stripe.complete_checkout(&FakeStripe::session_of_url(&url))).await;
    wait_until_within("the pack is granted", Duration::from_secs(30), || async {
        app.count("credit_grants WHERE source = 'addon_pack'").await == 1
    })
    .await;
    let reply = ws.chat("main", "now that I bought credits").await;
    assert!(reply.starts_with(REPLY_PREFIX), "{reply}");
    drop(ws);
    server.stop();
}
