//! A refunded or disputed pack takes back its credits, once, and never below zero (research
//! §5.5): what is left of the pack is voided; what was spent stays spent and flags the account.

use super::{Billing, PACK_CREDITS, of_kind, twin};

async fn pack_payment(billing: &Billing, session: &str) -> String {
    billing.stripe.session(session).unwrap()["payment_intent"].as_str().unwrap().to_string()
}

async fn review_reason(billing: &Billing, user: &str) -> libsql::Value {
    billing.app.sql(&format!("SELECT review_reason FROM credit_accounts WHERE user_id = '{user}'")).await.remove(0)
}

#[tokio::test]
async fn a_full_refund_voids_the_packs_credits_once() {
    let billing = Billing::start().await;
    let (cookie, user) = billing.user("refunded@example.com").await;
    let before = billing.billing(&cookie).await["balance"].as_i64().unwrap();
    let (session, events) = billing.buy_pack(&cookie).await;
    billing.deliver_and_settle(&events).await;
    assert_eq!(billing.billing(&cookie).await["balance"], before + PACK_CREDITS);

    let refund = billing.stripe.refund(&pack_payment(&billing, &session).await, true);
    let event = of_kind(&refund, "charge.refunded");
    // Delivered twice under two ids: voided once.
    billing.deliver_and_settle(&[event.clone(), twin(event, "evt_1RefundTwin0000000000001")]).await;
    assert_eq!(billing.billing(&cookie).await["balance"], before, "the pack's credits are gone, the rest stays");
    assert_eq!(billing.app.count("credit_ledger WHERE entry_type = 'void'").await, 1);
    assert_eq!(review_reason(&billing, &user).await, libsql::Value::Null, "nothing was spent");
    billing.no_invariant_violations().await;

    // A dispute of the same payment later finds nothing left to void.
    billing.deliver_and_settle(&billing.stripe.dispute(&pack_payment(&billing, &session).await)).await;
    assert_eq!(billing.app.count("credit_ledger WHERE entry_type = 'void'").await, 1);
    assert_eq!(billing.billing(&cookie).await["balance"], before);
}

#[tokio::test]
async fn a_dispute_after_spending_voids_only_what_is_left_and_flags_the_account() {
    let billing = Billing::start().await;
    let (cookie, user) = billing.user("disputer@example.com").await;
    let (session, events) = billing.buy_pack(&cookie).await;
    billing.deliver_and_settle(&events).await;
    // Everything but 300 credits spent (the free allowance first, then the pack).
    let balance = billing.billing(&cookie).await["balance"].as_i64().unwrap();
    let spend = balance - 300;
    let conn = billing.app.state.db.conn().unwrap();
    let call = gateway::db::usage_events::NewUsageEvent {
        user_id: &gateway::domain::UserId::parse(&user).unwrap(),
        idempotency_key: "spend-before-dispute",
        api: "openai",
        model: "m",
        input_tokens: 1,
        output_tokens: 1,
        upstream_status: 200,
        complete: true,
        created_at: gateway::domain::now_secs(),
    };
    gateway::db::credits::record_and_debit(&conn, &call, spend as u64).await.unwrap().unwrap();

    billing.deliver_and_settle(&billing.stripe.dispute(&pack_payment(&billing, &session).await)).await;
    let state = billing.billing(&cookie).await;
    assert_eq!(state["balance"], 0, "the 300 left are voided; never below zero");
    let libsql::Value::Text(reason) = review_reason(&billing, &user).await else { panic!("flagged") };
    assert!(reason.starts_with("dispute:dp_") && reason.contains("700 of its 1000 credits"), "{reason}");
    billing.no_invariant_violations().await;
}

#[tokio::test]
async fn a_partial_refund_keeps_the_credits_and_flags_the_account() {
    let billing = Billing::start().await;
    let (cookie, user) = billing.user("partial@example.com").await;
    let (session, events) = billing.buy_pack(&cookie).await;
    billing.deliver_and_settle(&events).await;
    let balance = billing.billing(&cookie).await["balance"].clone();
    billing.deliver_and_settle(&billing.stripe.refund(&pack_payment(&billing, &session).await, false)).await;
    assert_eq!(billing.billing(&cookie).await["balance"], balance);
    let libsql::Value::Text(reason) = review_reason(&billing, &user).await else { panic!("flagged") };
    assert!(reason.starts_with("partial refund of ch_"), "{reason}");
}
