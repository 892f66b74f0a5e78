//! The agent follows the subscription (research §6.4): a cancellation stops it and keeps its data
//! for the retention period, during which it may not start; a resubscription brings it back;
//! after the retention it is destroyed; `past_due` keeps it running through the grace period.

use gateway::domain::{UserId, now_secs};
use serde_json::Value;

use super::{Billing, PRO};
use crate::helpers::{error_code, wait_until};

fn id(user: &str) -> UserId {
    UserId::parse(user).unwrap()
}

async fn holds(billing: &Billing, user: &str) -> i64 {
    billing.app.count(&format!("agent_holds WHERE user_id = '{user}' AND destroyed_at IS NULL")).await
}

/// A chat socket for a held agent gets Roost's sentence, not a start.
async fn refused_start(billing: &Billing, cookie: &str) -> Value {
    let mut ws = billing.app.ws(cookie, "").await;
    ws.until("the refusal", |f| f["event"] == "roost.error").await["payload"].clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancelled_subscription_stops_the_agent_until_the_user_subscribes_again() {
    let billing = Billing::start_with(now_secs(), &["--no-prewarm"]).await;
    let (cookie, user) = billing.user("canceller@example.com").await;
    let (sub, events) = billing.subscribe(&cookie, PRO).await;
    billing.deliver_and_settle(&events).await;
    let mut ws = billing.app.ws(&cookie, "").await;
    ws.ready().await;
    assert!(billing.app.state.machines.address_if_ready(&id(&user)).await.is_some());

    billing.deliver_and_settle(&billing.stripe.cancel(&sub)).await;
    wait_until("the agent is stopped", || async {
        billing.app.state.machines.address_if_ready(&id(&user)).await.is_none()
    })
    .await;
    assert_eq!(holds(&billing, &user).await, 1);
    drop(ws);

    let refusal = refused_start(&billing, &cookie).await;
    assert_eq!(refusal["code"], "subscription_ended", "{refusal}");
    let message = refusal["message"].as_str().unwrap();
    assert!(message.starts_with("Your subscription has ended"), "{message}");
    assert!(message.contains("kept for 30 more days") && message.contains("/usage"), "{message}");
    let res = billing.app.send_as(&cookie, reqwest::Method::POST, "/api/machine/restart", None).await;
    assert_eq!(error_code(res).await, (403, "subscription_ended".to_string()));
    assert!(billing.app.state.machines.address_if_ready(&id(&user)).await.is_none(), "nothing started");

    // A new subscription (Checkout again: the old one is over) releases the agent.
    let (_, events) = billing.subscribe(&cookie, PRO).await;
    billing.deliver_and_settle(&events).await;
    assert_eq!(holds(&billing, &user).await, 0);
    let mut ws = billing.app.ws(&cookie, "").await;
    ws.ready().await;
    assert!(!ws.chat("main", "back again").await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_held_agent_is_destroyed_after_the_retention_and_past_due_waits_for_its_grace() {
    let billing = Billing::start_with(now_secs(), &["--no-prewarm", "--billing-retention-days", "7"]).await;
    let (cookie, user) = billing.user("lapsed@example.com").await;
    let (sub, events) = billing.subscribe(&cookie, PRO).await;
    billing.deliver_and_settle(&events).await;
    let mut ws = billing.app.ws(&cookie, "").await;
    ws.ready().await;

    // A failed renewal: the agent keeps running through the grace period.
    billing.deliver_and_settle(&billing.stripe.fail_renewal(&sub)).await;
    gateway::sweeps::run(&billing.app.state).await.unwrap();
    assert_eq!(holds(&billing, &user).await, 0, "within the grace period");
    assert!(billing.app.state.machines.address_if_ready(&id(&user)).await.is_some());

    // The grace period runs out with no event at all: the sweep notices.
    let since = now_secs() - 8 * 86_400;
    billing.app.sql(&format!("UPDATE subscriptions SET past_due_since = {since} RETURNING 1")).await;
    gateway::sweeps::run(&billing.app.state).await.unwrap();
    assert_eq!(holds(&billing, &user).await, 1);
    wait_until("the agent is stopped", || async {
        billing.app.state.machines.address_if_ready(&id(&user)).await.is_none()
    })
    .await;
    drop(ws);
    let kept =
        billing.app.sql(&format!("SELECT destroy_after - since FROM agent_holds WHERE user_id = '{user}'")).await;
    assert_eq!(kept, [libsql::Value::Integer(7 * 86_400)], "--billing-retention-days");

    // Seven days on: the sweep destroys it, once.
    billing.app.sql(&format!("UPDATE agent_holds SET destroy_after = {} RETURNING 1", now_secs() - 1)).await;
    gateway::sweeps::run(&billing.app.state).await.unwrap();
    assert_eq!(billing.app.count("agent_holds WHERE destroyed_at IS NOT NULL").await, 1);
    // Stage rows are written off the request path.
    wait_until("the machine is recorded as destroyed", || async {
        let stage =
            billing.app.sql(&format!("SELECT stage || '|' || detail FROM machines WHERE user_id = '{user}'")).await;
        stage == [libsql::Value::Text("destroyed|deleted after the subscription ended".into())]
    })
    .await;
    let refusal = refused_start(&billing, &cookie).await;
    assert!(refusal["message"].as_str().unwrap().contains("data was deleted"), "{refusal}");
}
