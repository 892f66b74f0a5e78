//! Stripe billing against the fake Stripe: Checkout and the Portal (research §4.3), the webhook
//! endpoint and its worker (the §4.4 matrix, one test per row), what statuses mean for access
//! (§6.4), and a randomized run of shuffled and duplicated deliveries.

mod access;
mod agent_access;
mod auto_refill;
mod checkout;
mod deleted_accounts;
mod plan_policy;
mod randomized;
mod refunds;
mod secrets;
mod webhooks;

use fakes::stripe::{Event, FakeStripe, FakeStripeOptions};
use gateway::domain::now_secs;
use reqwest::Response;
use serde_json::{Value, json};

use crate::helpers::{TestApp, wait_until};

pub const SECRET_KEY: &str = "sk_test_51RoostFakeKeyNeverLogged0000000000000001";
pub const WEBHOOK_SECRET: &str = "whsec_RoostFakeSigningSecretNeverLogged01";
/// The shipped example's prices (billing/plans.example.toml).
pub const STARTER: &str = "price_starter_monthly";
pub const PRO: &str = "price_pro_monthly";
pub const BUSINESS: &str = "price_business_monthly";
pub const PACK: &str = "price_pack_1000";
pub const PRO_CREDITS: i64 = 12_000;
pub const PACK_CREDITS: i64 = 1_000;

pub fn plans_file() -> &'static str {
    concat!(env!("CARGO_MANIFEST_DIR"), "/../billing/plans.example.toml")
}

/// A Roost with billing on, in front of a fake Stripe whose webhooks point back at it.
pub struct Billing {
    pub app: TestApp,
    pub stripe: FakeStripe,
}

impl Billing {
    pub async fn start() -> Self {
        Self::start_with(now_secs(), &[]).await
    }

    pub async fn start_with(stripe_now: i64, extra: &[&str]) -> Self {
        let stripe = FakeStripe::spawn(FakeStripeOptions {
            secret_key: SECRET_KEY.into(),
            webhook_secret: WEBHOOK_SECRET.into(),
            now: stripe_now,
        })
        .await;
        let base = stripe.base_url();
        // `extra` may bring its own --plans.
        let plans: &[&str] = if extra.contains(&"--plans") { &[] } else { &["--plans", plans_file()] };
        let mut flags = plans.to_vec();
        flags.extend_from_slice(&[
            "--stripe-secret-key",
            SECRET_KEY,
            "--stripe-webhook-secret",
            WEBHOOK_SECRET,
            "--stripe-api-base",
            &base,
            "--stripe-timeout-secs",
            "1",
        ]);
        flags.extend_from_slice(extra);
        let app = TestApp::spawn_with(&flags).await;
        stripe.set_webhook_url(&app.url("/webhooks/stripe"));
        Self { app, stripe }
    }

    /// A signed-up user: their session cookie and id.
    pub async fn user(&self, email: &str) -> (String, String) {
        self.app.signed_up_cookie(email).await
    }

    pub async fn checkout(&self, cookie: &str, body: &Value) -> Response {
        self.app.send_as(cookie, reqwest::Method::POST, "/api/billing/checkout", Some(body)).await
    }

    /// Checkout for `body`, answered with a URL: the session id.
    pub async fn start_checkout(&self, cookie: &str, body: &Value) -> String {
        let res = self.checkout(cookie, body).await;
        assert_eq!(res.status(), 200, "checkout for {body}");
        let url = res.json::<Value>().await.unwrap()["url"].as_str().unwrap().to_string();
        assert!(url.starts_with("https://checkout.stripe.com/c/pay/cs_test_"), "{url}");
        FakeStripe::session_of_url(&url)
    }

    /// A paid subscription to `price`: its id, and the events Stripe produced (not delivered).
    pub async fn subscribe(&self, cookie: &str, price: &str) -> (String, Vec<Event>) {
        let session = self.start_checkout(cookie, &json!({ "plan": price })).await;
        let events = self.stripe.complete_checkout(&session);
        let sub = self.stripe.session(&session).unwrap()["subscription"].as_str().unwrap().to_string();
        (sub, events)
    }

    /// A bought pack: the session id and its event (not delivered).
    pub async fn buy_pack(&self, cookie: &str) -> (String, Vec<Event>) {
        let session = self.start_checkout(cookie, &json!({ "pack": PACK })).await;
        (session.clone(), self.stripe.complete_checkout(&session))
    }

    pub async fn billing(&self, cookie: &str) -> Value {
        self.app.json_as(cookie, "/api/billing").await
    }

    /// Waits until the worker has handled every stored event.
    pub async fn settled(&self) {
        wait_until("the Stripe worker has handled every event", || async {
            self.app.count("stripe_events WHERE processed_at IS NULL").await == 0
        })
        .await;
    }

    pub async fn deliver_and_settle(&self, events: &[Event]) {
        self.stripe.deliver_all(events).await;
        self.settled().await;
    }

    /// Grants of the user: (source, source_ref, amount), in id order.
    pub async fn grants(&self, user: &str) -> Vec<(String, String, i64)> {
        let conn = self.app.state.db.conn().unwrap();
        let mut rows = conn
            .query("SELECT source, source_ref, amount FROM credit_grants WHERE user_id = ?1 ORDER BY id", [user])
            .await
            .unwrap();
        let mut out = Vec::new();
        while let Some(row) = rows.next().await.unwrap() {
            out.push((row.get(0).unwrap(), row.get(1).unwrap(), row.get(2).unwrap()));
        }
        out
    }

    /// The subscription's row equals what the fake API says now.
    pub async fn assert_mirrors(&self, sub: &str) {
        let api = self.stripe.subscription(sub).unwrap();
        let item = &api["items"]["data"][0];
        let conn = self.app.state.db.conn().unwrap();
        let row = gateway::db::subscriptions::find(&conn, sub).await.unwrap().expect("the subscription is mirrored");
        assert_eq!(row.status, api["status"].as_str().unwrap(), "status of {sub}");
        assert_eq!(row.price_id, item["price"]["id"].as_str().unwrap(), "price of {sub}");
        assert_eq!(row.period_start, item["current_period_start"].as_i64());
        assert_eq!(row.period_end, item["current_period_end"].as_i64());
        assert_eq!(row.customer, api["customer"].as_str().unwrap());
        assert_eq!(row.ended_at, api["ended_at"].as_i64());
    }

    pub async fn no_invariant_violations(&self) {
        let conn = self.app.state.db.conn().unwrap();
        let found = gateway::db::credits::invariant_violations(&conn).await.unwrap();
        assert!(found.is_empty(), "{found:#?}");
    }
}

/// The same event under another id: Stripe's "two separate Event objects" for one change.
pub fn twin(event: &Event, new_id: &str) -> Event {
    let mut body: Value = serde_json::from_str(&event.body).unwrap();
    body["id"] = json!(new_id);
    Event { id: new_id.to_string(), kind: event.kind.clone(), body: body.to_string() }
}

pub fn of_kind<'a>(events: &'a [Event], kind: &str) -> &'a Event {
    events.iter().find(|e| e.kind == kind).unwrap_or_else(|| panic!("no {kind} in {events:?}"))
}
