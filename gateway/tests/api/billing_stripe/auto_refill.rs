//! Auto-refill: one off-session charge of the saved card when the balance runs low, within the
//! monthly cap, credited exactly once; a declined card is recorded and shown, and not retried
//! until the user saves the settings again. Each user sees and changes only their own.

use fakes::stripe::Fault;
use gateway::domain::{UserId, now_secs};
use serde_json::{Value, json};

use super::{Billing, PACK, PACK_CREDITS, of_kind};
use crate::helpers::{error_code, wait_until};

/// Spends all but `left` credits.
async fn spend_down_to(billing: &Billing, cookie: &str, user: &str, left: i64) {
    let balance = billing.billing(cookie).await["balance"].as_i64().unwrap();
    let key = uuid::Uuid::new_v4().to_string();
    let call = gateway::db::usage_events::NewUsageEvent {
        user_id: &UserId::parse(user).unwrap(),
        idempotency_key: &key,
        api: "openai",
        model: "m",
        input_tokens: 1,
        output_tokens: 1,
        upstream_status: 200,
        complete: true,
        created_at: now_secs(),
    };
    let conn = billing.app.state.db.conn().unwrap();
    gateway::db::credits::record_and_debit(&conn, &call, (balance - left) as u64).await.unwrap().unwrap();
    assert_eq!(billing.billing(cookie).await["balance"], left);
}

async fn set(billing: &Billing, cookie: &str, body: Value) -> reqwest::Response {
    billing.app.send_as(cookie, reqwest::Method::PUT, "/api/billing/auto-refill", Some(&body)).await
}

fn refill(pack: &str, cap: i64) -> Value {
    json!({ "enabled": true, "pack": pack, "monthly_cap": cap })
}

#[tokio::test]
async fn a_low_balance_is_refilled_once_from_the_saved_card_up_to_the_monthly_cap() {
    let billing = Billing::start().await;
    let (cookie, user) = billing.user("refiller@example.com").await;
    let (_, events) = billing.buy_pack(&cookie).await;
    billing.deliver_and_settle(&events).await;
    spend_down_to(&billing, &cookie, &user, 50).await;
    assert_eq!(billing.billing(&cookie).await["low_balance"], true);
    billing.stripe.clear_requests();
    assert_eq!(set(&billing, &cookie, refill(PACK, PACK_CREDITS)).await.status(), 204);

    wait_until("the refill is credited", || async { billing.billing(&cookie).await["balance"] == 50 + PACK_CREDITS })
        .await;
    let charges = billing.stripe.requests_to("POST", "/v1/payment_intents");
    assert_eq!(charges.len(), 1);
    let charge = &charges[0];
    assert_eq!(charge.field("off_session"), Some("true"));
    assert_eq!(charge.field("confirm"), Some("true"));
    assert_eq!(charge.field("amount"), Some("1000"), "the pack's price in cents");
    assert_eq!(charge.field("metadata[user_id]"), Some(user.as_str()));
    let key = charge.header("idempotency-key").unwrap();
    assert!(key.starts_with(&format!("roost-refill-{user}-")) && key.ends_with("-1"), "{key}");

    // Stripe's own event for the payment changes nothing: credited once.
    let succeeded = of_kind(&billing.stripe.events(), "payment_intent.succeeded").clone();
    billing.deliver_and_settle(&[succeeded]).await;
    let state = billing.billing(&cookie).await;
    assert_eq!(state["balance"], 50 + PACK_CREDITS);
    assert_eq!(state["auto_refill"]["refilled_this_month"], PACK_CREDITS);
    assert_eq!(state["low_balance"], false);

    // Low again, but the month's cap is used up: no second charge.
    spend_down_to(&billing, &cookie, &user, 10).await;
    tokio::time::sleep(std::time::Duration::from_secs(3)).await;
    assert_eq!(billing.stripe.requests_to("POST", "/v1/payment_intents").len(), 1);
    assert_eq!(billing.billing(&cookie).await["balance"], 10);
    billing.no_invariant_violations().await;
}

#[tokio::test]
async fn a_declined_refill_is_shown_and_waits_for_the_user() {
    let billing = Billing::start().await;
    let (cookie, user) = billing.user("declined@example.com").await;
    let (_, events) = billing.buy_pack(&cookie).await;
    billing.deliver_and_settle(&events).await;
    spend_down_to(&billing, &cookie, &user, 0).await;
    billing.stripe.clear_requests();
    billing.stripe.fail_next("/v1/payment_intents", Fault::Status(402));
    assert_eq!(set(&billing, &cookie, refill(PACK, 5 * PACK_CREDITS)).await.status(), 204);

    wait_until("the failure is shown", || async {
        billing.billing(&cookie).await["auto_refill"]["last_failure"]["message"] == "Your card was declined."
    })
    .await;
    tokio::time::sleep(std::time::Duration::from_secs(3)).await;
    assert_eq!(billing.stripe.requests_to("POST", "/v1/payment_intents").len(), 1, "a decline is not retried");
    assert_eq!(billing.billing(&cookie).await["balance"], 0, "nothing credited");

    // The user saves the settings again (a new card, say): the next refill goes through.
    assert_eq!(set(&billing, &cookie, refill(PACK, 5 * PACK_CREDITS)).await.status(), 204);
    wait_until("the refill is credited", || async { billing.billing(&cookie).await["balance"] == PACK_CREDITS }).await;
    let state = billing.billing(&cookie).await;
    assert_eq!(state["auto_refill"]["last_failure"], Value::Null);
    let keys: Vec<String> = billing
        .stripe
        .requests_to("POST", "/v1/payment_intents")
        .iter()
        .map(|r| r.header("idempotency-key").unwrap().to_string())
        .collect();
    assert_eq!(keys.len(), 2);
    assert_ne!(keys[0], keys[1], "a new charge, not a replay of the declined one");
    billing.no_invariant_violations().await;
}

#[tokio::test]
async fn auto_refill_settings_are_checked_and_belong_to_their_user() {
    let billing = Billing::start().await;
    let (alice, _) = billing.user("alice-refill@example.com").await;
    let (bob, _) = billing.user("bob-refill@example.com").await;
    for (body, code) in [
        (refill("price_nope", 5_000), "unknown_pack"),
        (refill(PACK, PACK_CREDITS - 1), "invalid_monthly_cap"),
        (refill(PACK, 10_000_000_000), "invalid_monthly_cap"),
        (json!({ "enabled": true, "pack": PACK, "monthly_cap": 5000, "user_id": "someone" }), "invalid_json"),
        (json!({ "enabled": "yes", "pack": PACK, "monthly_cap": 5000 }), "invalid_json"),
    ] {
        let (status, found) = error_code(set(&billing, &bob, body.clone()).await).await;
        assert_eq!((status, found.as_str()), (400, code), "{body}");
    }
    assert_eq!(set(&billing, &alice, refill(PACK, 3 * PACK_CREDITS)).await.status(), 204);
    assert_eq!(billing.billing(&bob).await["auto_refill"]["enabled"], false, "Bob does not see Alice's");
    assert_eq!(set(&billing, &bob, json!({ "enabled": false, "pack": PACK, "monthly_cap": 1000 })).await.status(), 204);
    let alices = billing.billing(&alice).await["auto_refill"].clone();
    assert_eq!((alices["enabled"].clone(), alices["monthly_cap"].clone()), (json!(true), json!(3 * PACK_CREDITS)));
    let packs = billing.billing(&alice).await["packs"].clone();
    assert_eq!(packs[0]["amount_cents"], 1000, "{packs}");
}
