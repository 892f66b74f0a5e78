//! What a subscription's status means (research §6.4): the plan follows it, `past_due` keeps
//! the plan for a grace period without a new allowance, a downgrade waits for the period's end.

use gateway::domain::now_secs;
use serde_json::Value;

use super::{BUSINESS, Billing, PRO, PRO_CREDITS, STARTER};

fn plan(state: &Value) -> (&str, &str) {
    (state["plan"]["name"].as_str().unwrap_or("?"), state["status"].as_str().unwrap_or("?"))
}

#[tokio::test]
async fn the_plan_follows_the_subscription_and_past_due_keeps_it_for_a_grace_period() {
    let billing = Billing::start().await;
    let (cookie, user) = billing.user("late-payer@example.com").await;
    let (sub, events) = billing.subscribe(&cookie, PRO).await;
    billing.deliver_and_settle(&events).await;
    let state = billing.billing(&cookie).await;
    assert_eq!(plan(&state), ("Pro", "active"));
    assert_eq!(state["plan"]["monthly_credits"], PRO_CREDITS);
    let period_end = billing.stripe.subscription(&sub).unwrap()["items"]["data"][0]["current_period_end"].clone();
    assert_eq!(state["period_end"], period_end);

    billing.deliver_and_settle(&billing.stripe.fail_renewal(&sub)).await;
    assert_eq!(plan(&billing.billing(&cookie).await), ("Pro", "past_due"), "within the grace period");
    let allowances = billing.grants(&user).await.iter().filter(|g| g.0 == "plan_allowance").count();
    assert_eq!(allowances, 1, "an unpaid renewal grants nothing");

    // Eight days after the first failure (the row's clock moved back, no sleeping).
    let since = now_secs() - 8 * 86_400;
    billing.app.sql(&format!("UPDATE subscriptions SET past_due_since = {since} RETURNING 1")).await;
    assert_eq!(plan(&billing.billing(&cookie).await), ("Free", "past_due"), "the grace period is over");

    // Paid at last: a renewal brings the plan and its allowance back.
    billing.deliver_and_settle(&billing.stripe.renew(&sub)).await;
    assert_eq!(plan(&billing.billing(&cookie).await), ("Pro", "active"));
    let past_due = billing.app.sql("SELECT past_due_since FROM subscriptions").await;
    assert_eq!(past_due, [libsql::Value::Null]);
    assert_eq!(billing.grants(&user).await.iter().filter(|g| g.0 == "plan_allowance").count(), 2);
    billing.no_invariant_violations().await;
}

#[tokio::test]
async fn a_downgrade_takes_effect_at_the_period_end_and_an_upgrade_at_once() {
    let billing = Billing::start().await;
    let (cookie, _) = billing.user("downgrader@example.com").await;
    let (sub, events) = billing.subscribe(&cookie, BUSINESS).await;
    billing.deliver_and_settle(&events).await;
    billing.deliver_and_settle(&billing.stripe.change_price(&sub, STARTER)).await;
    billing.assert_mirrors(&sub).await;
    assert_eq!(plan(&billing.billing(&cookie).await), ("Business", "active"), "paid for until the period ends");

    billing.app.sql(&format!("UPDATE subscriptions SET prior_until = {} RETURNING 1", now_secs() - 1)).await;
    assert_eq!(plan(&billing.billing(&cookie).await), ("Starter", "active"), "the period is over");

    billing.deliver_and_settle(&billing.stripe.change_price(&sub, PRO)).await;
    assert_eq!(plan(&billing.billing(&cookie).await), ("Pro", "active"), "an upgrade is immediate");
}

#[tokio::test]
async fn cancellation_returns_the_user_to_the_free_plan_and_its_allowance() {
    let billing = Billing::start().await;
    let (cookie, user) = billing.user("leaver@example.com").await;
    let (sub, events) = billing.subscribe(&cookie, PRO).await;
    billing.deliver_and_settle(&events).await;
    assert_eq!(billing.billing(&cookie).await["balance"], PRO_CREDITS);
    billing.deliver_and_settle(&billing.stripe.cancel(&sub)).await;
    let state = billing.billing(&cookie).await;
    assert_eq!(plan(&state), ("Free", "canceled"));
    assert!(billing.grants(&user).await.iter().any(|g| g.0 == "free_allowance"), "free credits again");
    for status in ["unpaid", "incomplete", "paused"] {
        billing.deliver_and_settle(&billing.stripe.set_status(&sub, status)).await;
        assert_eq!(plan(&billing.billing(&cookie).await), ("Free", status));
    }
}
