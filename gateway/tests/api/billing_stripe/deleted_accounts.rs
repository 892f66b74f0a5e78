//! Deleting an account cancels its Stripe subscription: at once when Stripe answers, and later
//! (retried with backoff, one Idempotency-Key) when it does not; the deletion never waits.

use fakes::stripe::Fault;
use serde_json::json;

use super::{Billing, PRO};
use crate::helpers::{PASSWORD, wait_until};

#[tokio::test]
async fn deleting_the_account_cancels_its_subscription_even_while_stripe_is_down() {
    let billing = Billing::start().await;
    let (cookie, _) = billing.user("deleter@example.com").await;
    let (sub, events) = billing.subscribe(&cookie, PRO).await;
    billing.deliver_and_settle(&events).await;
    // A bystander's subscription is left alone.
    let (other, _) = billing.user("stays@example.com").await;
    let (other_sub, events) = billing.subscribe(&other, PRO).await;
    billing.deliver_and_settle(&events).await;

    // Stripe fails every attempt of the first cancellation call.
    for _ in 0..3 {
        billing.stripe.fail_next(&format!("/v1/subscriptions/{sub}"), Fault::Status(503));
    }
    let body = json!({ "password": PASSWORD });
    let res = billing.app.send_as(&cookie, reqwest::Method::DELETE, "/api/me", Some(&body)).await;
    assert_eq!(res.status(), 204, "the deletion does not wait for Stripe");

    wait_until("the cancellation was retried and went through", || async {
        billing.stripe.subscription(&sub).unwrap()["status"] == "canceled"
    })
    .await;
    let attempts = billing.stripe.requests_to("DELETE", &format!("/v1/subscriptions/{sub}"));
    assert!(attempts.len() >= 4, "three failed attempts, then one that worked: {}", attempts.len());
    let keys: Vec<_> = attempts.iter().map(|r| r.header("idempotency-key").unwrap_or_default().to_string()).collect();
    assert!(keys.iter().all(|k| !k.is_empty() && *k == keys[0]), "one key for every attempt: {keys:?}");
    wait_until("the mirror says canceled", || async {
        billing
            .app
            .count(&format!("subscriptions WHERE stripe_subscription_id = '{sub}' AND status = 'canceled'"))
            .await
            == 1
    })
    .await;
    let cancels = billing.stripe.requests_to("DELETE", &format!("/v1/subscriptions/{sub}")).len();
    tokio::time::sleep(std::time::Duration::from_secs(3)).await;
    assert_eq!(
        billing.stripe.requests_to("DELETE", &format!("/v1/subscriptions/{sub}")).len(),
        cancels,
        "once done, never again"
    );
    assert_eq!(billing.stripe.subscription(&other_sub).unwrap()["status"], "active");
    assert!(billing.stripe.requests_to("DELETE", &format!("/v1/subscriptions/{other_sub}")).is_empty());
}
