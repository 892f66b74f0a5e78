//! `POST /webhooks/stripe` and its worker: refusals that store nothing, and the research's
//! §4.4 matrix, one test per row. Handlers re-fetch, so the final state is the fake API's.

use fakes::stripe::{Event, Fault};
use gateway::domain::now_secs;

use super::{Billing, PACK_CREDITS, PRO, PRO_CREDITS, WEBHOOK_SECRET, of_kind, twin};

async fn post(billing: &Billing, body: Vec<u8>, signature: Option<String>) -> (u16, String) {
    let mut request = reqwest::Client::new().post(billing.app.url("/webhooks/stripe")).body(body);
    if let Some(signature) = signature {
        request = request.header("stripe-signature", signature);
    }
    let res = request.send().await.unwrap();
    let status = res.status().as_u16();
    let text = res.text().await.unwrap_or_default();
    (status, text)
}

#[tokio::test]
async fn bad_signatures_timestamps_and_bodies_get_a_400_and_store_nothing() {
    let billing = Billing::start().await;
    let now = now_secs();
    let good = r#"{"id":"evt_1TestGood0000000000000001","object":"event","type":"invoice.paid","created":1,"livemode":false,"data":{"object":{"id":"in_1Test","customer":"cus_x"}}}"#;
    let sign = |body: &[u8], t: i64| fakes::stripe::sign(WEBHOOK_SECRET, body, t);
    let v1 = |body: &[u8], t: i64| sign(body, t).split_once(",v1=").unwrap().1.to_string();
    let cases: Vec<(&str, Vec<u8>, Option<String>, u16)> = vec![
        ("no header", good.into(), None, 400),
        ("another secret", good.into(), Some(fakes::stripe::sign("whsec_notTheRightOne", good.as_bytes(), now)), 400),
        (
            "the secret without whsec_",
            good.into(),
            Some(fakes::stripe::sign(&WEBHOOK_SECRET[6..], good.as_bytes(), now)),
            400,
        ),
        ("301 s old", good.into(), Some(sign(good.as_bytes(), now - 301)), 400),
        ("400 s ahead", good.into(), Some(sign(good.as_bytes(), now + 400)), 400),
        ("only v0", good.into(), Some(format!("t={now},v0={}", v1(good.as_bytes(), now))), 400),
        ("an edited timestamp", good.into(), Some(format!("t={},v1={}", now + 1, v1(good.as_bytes(), now))), 400),
        (
            "a tampered body",
            good.replace("invoice.paid", "invoice.voided").into(),
            Some(sign(good.as_bytes(), now)),
            400,
        ),
        ("garbage header", good.into(), Some("sha256=abc".into()), 400),
        ("not UTF-8", vec![0xff, 0xfe, b'{'], Some(sign(&[0xff, 0xfe, b'{'], now)), 400),
        ("not JSON", b"{\"id\":".to_vec(), Some(sign(b"{\"id\":", now)), 400),
        ("empty", Vec::new(), Some(sign(b"", now)), 400),
        ("not an event", br#"{"hello":"world"}"#.to_vec(), Some(sign(br#"{"hello":"world"}"#, now)), 400),
    ];
    for (what, body, signature, expected) in cases {
        let (status, text) = post(&billing, body, signature).await;
        assert_eq!(status, expected, "{what}: {text}");
        assert!(text.contains("\"code\"") && text.contains("\"message\""), "{what}: one error shape: {text}");
        assert_eq!(billing.app.count("stripe_events").await, 0, "{what} stored nothing");
    }
    let oversize = format!(r#"{{"id":"evt_big","pad":"{}"}}"#, "x".repeat(1024 * 1024));
    let (status, _) = post(&billing, oversize.clone().into(), Some(sign(oversize.as_bytes(), now))).await;
    assert_eq!(status, 413, "an oversize body");
    assert_eq!(billing.app.count("stripe_events").await, 0);

    // The same body, signed right (with test mode's extra v0): stored.
    let header = format!("{},v0={}", sign(good.as_bytes(), now), "0".repeat(64));
    let (status, text) = post(&billing, good.into(), Some(header)).await;
    assert_eq!((status, text.as_str()), (200, r#"{"duplicate":false,"received":true}"#));
    assert_eq!(billing.app.count("stripe_events").await, 1);
}

#[tokio::test]
async fn a_duplicate_delivery_of_one_event_id_is_a_no_op() {
    let billing = Billing::start().await;
    let (cookie, user) = billing.user("dup@example.com").await;
    let (session, events) = billing.buy_pack(&cookie).await;
    for _ in 0..3 {
        billing.deliver_and_settle(&events).await;
    }
    assert_eq!(billing.app.count("stripe_events").await, 1);
    let grants = billing.grants(&user).await;
    assert_eq!(grants, [("addon_pack".to_string(), format!("pack:{session}"), PACK_CREDITS)]);
    let fetches = billing.stripe.requests_to("GET", &format!("/v1/checkout/sessions/{session}"));
    assert_eq!(fetches.len(), 1, "handled once");
}

#[tokio::test]
async fn two_events_for_one_checkout_session_grant_the_pack_once() {
    let billing = Billing::start().await;
    let (cookie, user) = billing.user("twice@example.com").await;
    let (session, events) = billing.buy_pack(&cookie).await;
    let second = twin(&events[0], "evt_1TwinOfTheCompletedSession1");
    billing.deliver_and_settle(&[events[0].clone(), second]).await;
    assert_eq!(billing.app.count("stripe_events").await, 2, "two events, each handled");
    let packs: Vec<_> = billing.grants(&user).await.into_iter().filter(|g| g.0 == "addon_pack").collect();
    assert_eq!(packs, [("addon_pack".to_string(), format!("pack:{session}"), PACK_CREDITS)]);
    billing.no_invariant_violations().await;
}

#[tokio::test]
async fn two_invoice_paid_events_for_one_invoice_grant_the_allowance_once() {
    let billing = Billing::start().await;
    let (cookie, user) = billing.user("invoice@example.com").await;
    let (_, events) = billing.subscribe(&cookie, PRO).await;
    let paid = of_kind(&events, "invoice.paid");
    billing.deliver_and_settle(&events).await;
    billing.deliver_and_settle(&[twin(paid, "evt_1TwinOfTheInvoicePaid000001")]).await;
    let allowances: Vec<_> = billing.grants(&user).await.into_iter().filter(|g| g.0 == "plan_allowance").collect();
    assert_eq!(allowances.len(), 1, "{allowances:?}");
    assert!(allowances[0].1.starts_with("allowance:in_1"), "{allowances:?}");
    assert_eq!(allowances[0].2, PRO_CREDITS);
    billing.no_invariant_violations().await;
}

#[tokio::test]
async fn subscription_updated_before_checkout_completed_ends_as_the_api_says() {
    let billing = Billing::start().await;
    let (cookie, _) = billing.user("early-update@example.com").await;
    let (sub, created) = billing.subscribe(&cookie, PRO).await;
    let updated = billing.stripe.set_status(&sub, "active");
    billing.deliver_and_settle(&updated).await;
    billing.assert_mirrors(&sub).await;
    billing.deliver_and_settle(&[of_kind(&created, "checkout.session.completed").clone()]).await;
    billing.assert_mirrors(&sub).await;
    assert_eq!(billing.billing(&cookie).await["plan"]["name"], "Pro");
}

#[tokio::test]
async fn invoice_paid_before_subscription_created_ends_as_the_api_says() {
    let billing = Billing::start().await;
    let (cookie, user) = billing.user("early-invoice@example.com").await;
    let (sub, events) = billing.subscribe(&cookie, PRO).await;
    billing.deliver_and_settle(&[of_kind(&events, "invoice.paid").clone()]).await;
    billing.assert_mirrors(&sub).await;
    assert_eq!(billing.grants(&user).await.iter().filter(|g| g.0 == "plan_allowance").count(), 1);
    billing.deliver_and_settle(&[of_kind(&events, "customer.subscription.created").clone()]).await;
    billing.assert_mirrors(&sub).await;
    let state = billing.billing(&cookie).await;
    assert_eq!((state["plan"]["name"].as_str(), state["status"].as_str()), (Some("Pro"), Some("active")), "{state}");
    assert_eq!(state["balance"], PRO_CREDITS, "no free allowance for a paying user: {state}");
}

#[tokio::test]
async fn subscription_deleted_before_updated_ends_canceled() {
    let billing = Billing::start().await;
    let (cookie, _) = billing.user("early-delete@example.com").await;
    let (sub, events) = billing.subscribe(&cookie, PRO).await;
    billing.deliver_and_settle(&events).await;
    let updated = billing.stripe.change_price(&sub, super::BUSINESS);
    let deleted = billing.stripe.cancel(&sub);
    billing.deliver_and_settle(&deleted).await;
    billing.deliver_and_settle(&updated).await;
    billing.assert_mirrors(&sub).await;
    let state = billing.billing(&cookie).await;
    assert_eq!((state["plan"]["name"].as_str(), state["status"].as_str()), (Some("Free"), Some("canceled")), "{state}");
}

#[tokio::test]
async fn a_failing_stripe_is_retried_with_backoff_and_the_error_is_kept() {
    let billing = Billing::start().await;
    let (cookie, user) = billing.user("flaky@example.com").await;
    let (_, events) = billing.subscribe(&cookie, PRO).await;
    let paid: Vec<Event> = vec![of_kind(&events, "invoice.paid").clone()];
    for _ in 0..3 {
        billing.stripe.fail_next("/v1/invoices/", Fault::Status(500));
    }
    billing.stripe.deliver_all(&paid).await;
    crate::helpers::wait_until("the first attempt failed", || async {
        billing.app.count("stripe_events WHERE attempts = 1 AND last_error IS NOT NULL").await == 1
    })
    .await;
    let error = billing.app.sql("SELECT last_error FROM stripe_events").await;
    assert!(format!("{error:?}").contains("after 3 attempts"), "{error:?}");
    billing.settled().await;
    assert_eq!(billing.app.count("stripe_events WHERE attempts = 1 AND last_error IS NULL").await, 1);
    assert_eq!(billing.grants(&user).await.iter().filter(|g| g.0 == "plan_allowance").count(), 1);
}

#[tokio::test]
async fn a_missed_delivery_is_covered_by_the_periodic_resync() {
    let billing = Billing::start_with(now_secs(), &["--stripe-resync-interval", "1s"]).await;
    let (cookie, user) = billing.user("missed@example.com").await;
    let (sub, _never_delivered) = billing.subscribe(&cookie, PRO).await;
    crate::helpers::wait_until("the re-sync found the subscription and its paid invoice", || async {
        billing.grants(&user).await.iter().any(|g| g.0 == "plan_allowance")
    })
    .await;
    billing.assert_mirrors(&sub).await;
    assert_eq!(billing.app.count("stripe_events").await, 0, "no event was delivered");
}
