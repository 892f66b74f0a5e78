//! The Usage page's billing cards and the low-balance notice in Chromium, against a fake Stripe.

use fakes::stripe::Fault;
use gateway::domain::{UserId, now_secs};

use crate::billing_stripe::{Billing, PACK, PRO};
use crate::browser::run_spec;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_usage_page_offers_plans_packs_and_auto_refill_in_chromium() {
    let billing = Billing::start_with(now_secs(), &["--no-prewarm"]).await;
    let email = "billing-page@example.com";
    let (cookie, user) = billing.user(email).await;
    // A bought pack saves the card; then all but 50 credits are spent.
    let (_, events) = billing.buy_pack(&cookie).await;
    billing.deliver_and_settle(&events).await;
    let balance = billing.billing(&cookie).await["balance"].as_i64().unwrap();
    let call = gateway::db::usage_events::NewUsageEvent {
        user_id: &UserId::parse(&user).unwrap(),
        idempotency_key: "browser-spend",
        api: "openai",
        model: "m",
        input_tokens: 1,
        output_tokens: 1,
        upstream_status: 200,
        complete: true,
        created_at: now_secs(),
    };
    let conn = billing.app.state.db.conn().unwrap();
    gateway::db::credits::record_and_debit(&conn, &call, (balance - 50) as u64).await.unwrap().unwrap();
    billing.stripe.fail_next("/v1/payment_intents", Fault::Status(402));
    let Billing { app, stripe } = billing;
    tokio::task::spawn_blocking(move || {
        run_spec(
            &app,
            "billing.spec.mjs",
            &[("EMAIL", email), ("PASSWORD", crate::helpers::PASSWORD), ("PACK", PACK), ("PLAN", PRO)],
        );
    })
    .await
    .unwrap();
    drop(stripe);
}
