//! `POST /api/billing/checkout` and `/portal` against the fake Stripe: what is sent (research
//! §4.3), once, with an Idempotency-Key reused on every retry; what the browser gets back.

use std::collections::BTreeSet;

use fakes::stripe::Fault;
use serde_json::{Value, json};

use super::{Billing, PACK, PRO, SECRET_KEY};
use crate::helpers::{TestApp, error_code};

fn pairs(request: &fakes::stripe::RecordedRequest) -> BTreeSet<(String, String)> {
    request.form.iter().cloned().collect()
}

fn set(pairs: &[(&str, &str)]) -> BTreeSet<(String, String)> {
    pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

#[tokio::test]
async fn checkout_creates_the_customer_once_and_sends_the_research_parameters() {
    let billing = Billing::start().await;
    let (cookie, user) = billing.user("buyer@example.com").await;
    let res = billing.checkout(&cookie, &json!({ "plan": PRO })).await;
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.unwrap();
    let keys: Vec<&String> = body.as_object().unwrap().keys().collect();
    assert_eq!(keys, ["url"], "only the Checkout URL reaches the browser: {body}");

    let customers = billing.stripe.requests_to("POST", "/v1/customers");
    assert_eq!(customers.len(), 1);
    assert_eq!(pairs(&customers[0]), set(&[("email", "buyer@example.com"), ("metadata[user_id]", &user)]));
    let customer = billing.stripe.customers()[0]["id"].as_str().unwrap().to_string();
    assert!(customer.starts_with("cus_") && customer.len() == 18, "{customer}");

    let sessions = billing.stripe.requests_to("POST", "/v1/checkout/sessions");
    assert_eq!(sessions.len(), 1);
    let session = &sessions[0];
    assert_eq!(session.header("content-type"), Some("application/x-www-form-urlencoded"));
    assert_eq!(session.header("authorization"), Some(format!("Bearer {SECRET_KEY}").as_str()));
    assert_eq!(session.header("stripe-version"), Some("2026-09-30.endive"));
    assert!(session.header("idempotency-key").is_some_and(|k| !k.is_empty()));
    let origin = &billing.app.origin;
    assert_eq!(
        pairs(session),
        set(&[
            ("mode", "subscription"),
            ("line_items[0][price]", PRO),
            ("line_items[0][quantity]", "1"),
            ("success_url", &format!("{origin}/billing/success?session_id={{CHECKOUT_SESSION_ID}}")),
            ("cancel_url", &format!("{origin}/billing")),
            ("client_reference_id", &user),
            ("customer", &customer),
            ("metadata[user_id]", &user),
            ("subscription_data[metadata][user_id]", &user),
            ("allow_promotion_codes", "true"),
        ])
    );

    // A pack for the same user: the same customer, no second one.
    billing.start_checkout(&cookie, &json!({ "pack": PACK })).await;
    assert_eq!(billing.stripe.requests_to("POST", "/v1/customers").len(), 1, "the customer is created once");
    let sessions = billing.stripe.requests_to("POST", "/v1/checkout/sessions");
    assert_eq!(
        pairs(&sessions[1]),
        set(&[
            ("mode", "payment"),
            ("line_items[0][price]", PACK),
            ("line_items[0][quantity]", "1"),
            ("success_url", &format!("{origin}/billing/success?session_id={{CHECKOUT_SESSION_ID}}")),
            ("cancel_url", &format!("{origin}/billing")),
            ("client_reference_id", &user),
            ("customer", &customer),
            ("metadata[user_id]", &user),
            ("metadata[kind]", "credit_pack"),
            ("metadata[pack]", PACK),
        ])
    );
    let (_, other) = billing.user("other@example.com").await;
    assert_ne!(other, user);
}

#[tokio::test]
async fn unknown_plans_and_bad_bodies_are_refused_without_calling_stripe() {
    let billing = Billing::start().await;
    let (cookie, _) = billing.user("picky@example.com").await;
    for (body, code) in [
        (json!({ "plan": "price_nope" }), "unknown_plan"),
        (json!({ "pack": PRO }), "unknown_pack"),
        (json!({ "plan": PACK }), "unknown_plan"),
        (json!({ "plan": PRO, "pack": PACK }), "invalid_checkout"),
        (json!({}), "invalid_checkout"),
        (json!({ "plan": 5 }), "invalid_json"),
        (json!({ "plan": PRO, "price": 1 }), "invalid_json"),
    ] {
        let res = billing.checkout(&cookie, &body).await;
        assert_eq!(error_code(res).await, (400, code.to_string()), "{body}");
    }
    assert!(billing.stripe.requests().is_empty(), "{:?}", billing.stripe.requests());
}

#[tokio::test]
async fn a_user_with_a_live_subscription_is_sent_to_the_portal_for_plan_changes() {
    let billing = Billing::start().await;
    let (cookie, _) = billing.user("subscriber@example.com").await;
    let (_, events) = billing.subscribe(&cookie, PRO).await;
    billing.deliver_and_settle(&events).await;
    billing.stripe.clear_requests();

    let res = billing.checkout(&cookie, &json!({ "plan": super::BUSINESS })).await;
    assert_eq!(res.status(), 200);
    let url = res.json::<Value>().await.unwrap()["url"].as_str().unwrap().to_string();
    assert!(url.starts_with("https://billing.stripe.com/p/session/"), "{url}");
    assert!(billing.stripe.requests_to("POST", "/v1/checkout/sessions").is_empty(), "no second subscription");
    let portal = billing.stripe.requests_to("POST", "/v1/billing_portal/sessions");
    assert_eq!(portal.len(), 1);
    let customer = billing.stripe.customers()[0]["id"].as_str().unwrap().to_string();
    assert_eq!(portal[0].field("customer"), Some(customer.as_str()));
    assert_eq!(portal[0].field("return_url"), Some(format!("{}/billing", billing.app.origin).as_str()));
    // A pack is still a Checkout.
    billing.start_checkout(&cookie, &json!({ "pack": PACK })).await;
}

#[tokio::test]
async fn the_portal_needs_a_billing_account() {
    let billing = Billing::start().await;
    let (cookie, _) = billing.user("portal@example.com").await;
    let portal = || billing.app.send_as(&cookie, reqwest::Method::POST, "/api/billing/portal", None);
    assert_eq!(error_code(portal().await).await, (409, "no_billing_account".into()));
    assert!(billing.stripe.requests().is_empty());
    billing.start_checkout(&cookie, &json!({ "pack": PACK })).await;
    let res = portal().await;
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.unwrap();
    assert!(body["url"].as_str().unwrap().starts_with("https://billing.stripe.com/p/session/"), "{body}");
    assert_eq!(body.as_object().unwrap().len(), 1, "{body}");
}

#[tokio::test]
async fn without_a_stripe_key_billing_is_off_and_says_so() {
    let app = TestApp::spawn().await;
    let (cookie, _) = app.signed_up_cookie("free@example.com").await;
    for path in ["/api/billing/checkout", "/api/billing/portal"] {
        let res = app.send_as(&cookie, reqwest::Method::POST, path, Some(&json!({ "plan": PRO }))).await;
        assert_eq!(res.status(), 503, "{path}");
        let body: Value = res.json().await.unwrap();
        assert_eq!(body["error"]["code"], "billing_off");
        assert_eq!(body["error"]["message"], "Billing is off on this server.");
    }
    let res = reqwest::Client::new().post(app.url("/webhooks/stripe")).body("{}").send().await.unwrap();
    assert_eq!(res.status(), 404);
    let billing = app.json_as(&cookie, "/api/billing").await;
    assert_eq!((billing["status"].as_str(), billing["billing"].as_bool()), (Some("free"), Some(false)), "{billing}");
    assert_eq!(billing["plans"], json!([]));
}

#[tokio::test]
async fn every_post_carries_an_idempotency_key_and_each_retry_reuses_it() {
    let billing = Billing::start().await;
    let (cookie, _) = billing.user("retry@example.com").await;
    billing.stripe.fail_next("/v1/customers", Fault::Status(500));
    billing.stripe.fail_next("/v1/checkout/sessions", Fault::Timeout);
    billing.stripe.fail_next("/v1/checkout/sessions", Fault::Status(429));
    billing.start_checkout(&cookie, &json!({ "plan": PRO })).await;

    let keys = |path: &str| -> Vec<String> {
        billing
            .stripe
            .requests_to("POST", path)
            .iter()
            .map(|r| r.header("idempotency-key").unwrap().to_string())
            .collect()
    };
    let customers = keys("/v1/customers");
    assert_eq!(customers.len(), 2, "a 500, then the answer");
    assert_eq!(customers[0], customers[1], "the retry reuses the key");
    let sessions = keys("/v1/checkout/sessions");
    assert_eq!(sessions.len(), 3, "a timeout, a 429, then the answer");
    assert!(sessions.iter().all(|k| *k == sessions[0]), "{sessions:?}");
    assert_ne!(customers[0], sessions[0]);
    assert_eq!(billing.stripe.customers().len(), 1);

    // A second checkout: a fresh key of its own; the portal too.
    billing.start_checkout(&cookie, &json!({ "pack": PACK })).await;
    billing.app.send_as(&cookie, reqwest::Method::POST, "/api/billing/portal", None).await;
    let posts: Vec<_> = billing.stripe.requests().into_iter().filter(|r| r.method == "POST").collect();
    assert_eq!(posts.len(), 7);
    assert!(posts.iter().all(|r| r.header("idempotency-key").is_some_and(|k| !k.is_empty())), "{posts:?}");
    let distinct: BTreeSet<&str> = posts.iter().filter_map(|r| r.header("idempotency-key")).collect();
    assert_eq!(distinct.len(), 4, "customer, two sessions, one portal");
}

#[tokio::test]
async fn a_card_error_is_not_retried_and_an_unanswering_stripe_is_a_503_sentence() {
    let billing = Billing::start().await;
    let (cookie, _) = billing.user("declined@example.com").await;
    billing.stripe.fail_next("/v1/checkout/sessions", Fault::Status(402));
    let (status, code) = error_code(billing.checkout(&cookie, &json!({ "plan": PRO })).await).await;
    assert_eq!((status, code.as_str()), (502, "stripe_refused"));
    assert_eq!(billing.stripe.requests_to("POST", "/v1/checkout/sessions").len(), 1, "a 402 is final");

    for _ in 0..3 {
        billing.stripe.fail_next("/v1/checkout/sessions", Fault::Status(503));
    }
    let res = billing.checkout(&cookie, &json!({ "plan": PRO })).await;
    assert!(res.headers().contains_key("retry-after"));
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["error"]["code"], "stripe_unavailable");
    assert_eq!(body["error"]["message"], "Stripe did not answer. Try again in a minute.");
    assert_eq!(billing.stripe.requests_to("POST", "/v1/checkout/sessions").len(), 4, "three attempts");
}
