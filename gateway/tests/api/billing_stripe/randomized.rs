//! 1,000 events across 50 users: delivered in order as they happen, each step handled before the
//! next, to one Roost, and all at once,
//! shuffled, with 30% of them twice, to another (each with its own fake Stripe running the same
//! script, so ids match). Both end in the same state: subscriptions, grants and balances, keyed
//! by Stripe customer; and the books balance in both.

use std::collections::BTreeMap;
use std::time::Duration;

use fakes::stripe::Event;
use futures_util::StreamExt;
use gateway::domain::now_secs;
use serde_json::json;

use super::{BUSINESS, Billing, PACK, PRO, STARTER};
use crate::helpers::wait_until_within;

const USERS: usize = 50;
const RENEWALS: usize = 8;

/// xorshift64*: a fixed, seeded shuffle (no wall clock, no global RNG).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// Runs the same script against `billing`; `live` delivers each step's events as they happen and
/// waits until they are handled, so that Roost sees every state in turn.
async fn script(billing: &Billing, live: bool) -> Vec<Event> {
    let mut all = Vec::new();
    let emit = |all: &mut Vec<Event>, step: Vec<Event>| {
        all.extend(step.iter().cloned());
        async move {
            if live {
                billing.deliver_and_settle(&step).await;
            }
        }
    };
    for i in 0..USERS {
        let (cookie, _) = billing.user(&format!("user{i}@example.com")).await;
        let price = [STARTER, PRO, BUSINESS][i % 3];
        let (sub, events) = billing.subscribe(&cookie, price).await;
        emit(&mut all, events).await;
        let session = billing.start_checkout(&cookie, &json!({ "pack": PACK })).await;
        emit(&mut all, billing.stripe.complete_checkout(&session)).await;
        for r in 0..RENEWALS {
            if i % 7 == 0 && r == 3 {
                emit(&mut all, billing.stripe.fail_renewal(&sub)).await;
            }
            emit(&mut all, billing.stripe.renew(&sub)).await;
        }
        if i % 5 == 0 {
            emit(&mut all, billing.stripe.cancel(&sub)).await;
        }
    }
    all
}

type Snapshot = BTreeMap<String, (i64, Vec<String>, Vec<String>)>;

/// Per Stripe customer: the balance, the grants, the subscriptions.
async fn snapshot(billing: &Billing) -> Snapshot {
    let conn = billing.app.state.db.conn().unwrap();
    let mut out = Snapshot::new();
    let mut customers = conn.query("SELECT user_id, stripe_customer_id FROM billing_customers", ()).await.unwrap();
    let mut pairs = Vec::new();
    while let Some(row) = customers.next().await.unwrap() {
        pairs.push((row.get::<String>(0).unwrap(), row.get::<String>(1).unwrap()));
    }
    drop(customers);
    for (user, customer) in pairs {
        let text_rows = |sql: &'static str| {
            let (conn, user) = (&conn, user.clone());
            async move {
                let mut rows = conn.query(sql, [user.as_str()]).await.unwrap();
                let mut out = Vec::new();
                while let Some(row) = rows.next().await.unwrap() {
                    out.push(row.get::<String>(0).unwrap());
                }
                out
            }
        };
        let balance = text_rows("SELECT CAST(balance AS TEXT) FROM credit_accounts WHERE user_id = ?1").await;
        let grants = text_rows(
            "SELECT source || ' ' || source_ref || ' ' || amount || ' ' || remaining || ' ' || effective_at || ' ' ||
                    coalesce(expires_at, '-') FROM credit_grants WHERE user_id = ?1 ORDER BY source_ref",
        )
        .await;
        let subscriptions = text_rows(
            "SELECT stripe_subscription_id || ' ' || status || ' ' || price_id || ' ' || plan || ' ' || period_start || ' ' ||
                    period_end || ' ' || cancel_at_period_end || ' ' || coalesce(ended_at, '-')
               FROM subscriptions WHERE user_id = ?1 ORDER BY stripe_subscription_id",
        )
        .await;
        let balance = balance.first().map_or(0, |b| b.parse().unwrap());
        out.insert(customer, (balance, grants, subscriptions));
    }
    out
}

async fn settle(billing: &Billing, events: usize) {
    wait_until_within("every event is handled", Duration::from_secs(180), || async {
        billing.app.count("stripe_events WHERE processed_at IS NOT NULL").await as usize == events
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shuffled_and_duplicated_deliveries_end_as_in_order_delivery_does() {
    let stripe_now = now_secs();
    let in_order = Billing::start_with(stripe_now, &["--auth-rate-per-ip", "1000"]).await;
    let events = script(&in_order, true).await;
    assert!(events.len() >= 1_000, "{} events", events.len());
    settle(&in_order, events.len()).await;

    let shuffled = Billing::start_with(stripe_now, &["--auth-rate-per-ip", "1000"]).await;
    let same = script(&shuffled, false).await;
    assert_eq!(
        same.iter().map(|e| &e.id).collect::<Vec<_>>(),
        events.iter().map(|e| &e.id).collect::<Vec<_>>(),
        "the two fakes ran the same script"
    );
    let mut rng = Rng(0x005E_ED0F_B111_1116);
    let mut deliveries: Vec<Event> = same.clone();
    for event in &same {
        if rng.below(10) < 3 {
            deliveries.push(event.clone());
        }
    }
    for i in (1..deliveries.len()).rev() {
        deliveries.swap(i, rng.below(i + 1));
    }
    let statuses: Vec<u16> = futures_util::stream::iter(deliveries.iter())
        .map(|e| shuffled.stripe.deliver(e))
        .buffer_unordered(4)
        .collect()
        .await;
    assert!(statuses.iter().all(|s| *s == 200), "every delivery answered 200");
    settle(&shuffled, same.len()).await;

    let (a, b) = (snapshot(&in_order).await, snapshot(&shuffled).await);
    assert_eq!(a.len(), USERS);
    for (customer, state) in &a {
        assert_eq!(Some(state), b.get(customer), "customer {customer}");
    }
    assert_eq!(a, b);
    for (balance, grants, subscriptions) in a.values() {
        assert_eq!(grants.len(), 1 + 1 + RENEWALS, "one allowance per paid invoice, one pack: {grants:?}");
        assert!(*balance > 0 && subscriptions.len() == 1, "{balance} {subscriptions:?}");
    }
    let canceled = a.values().filter(|(_, _, s)| s[0].contains(" canceled ")).count();
    assert_eq!(canceled, USERS / 5, "every fifth user cancelled");
    in_order.no_invariant_violations().await;
    shuffled.no_invariant_violations().await;
}
