//! Stripe state → Roost state. Every handler re-fetches the object from the Stripe API and
//! overwrites the local mirror, so neither the order nor the payload of webhook events matters
//! (research: stripe-billing §2.1); every side effect is keyed by a natural id, so duplicates do
//! nothing: an allowance by `allowance:<invoice id>`, a pack by `pack:<checkout session id>`.

pub mod access;
mod deleted_accounts;
pub mod refill;
mod refunds;
pub mod worker;

use std::time::Duration;

use billing::access::{has_access, is_live};
use billing::plans::{Catalog, Plan};
use billing::stripe::client::{CheckoutSession, Invoice, Subscription};
use billing::stripe::{CallError, Stripe};
use libsql::Connection;

use crate::app::App;
use crate::db::credits::{self, GrantSource, NewGrant};
use crate::db::subscriptions::{self, SubscriptionRow};
use crate::db::{billing_customers, users};
use crate::domain::{UserId, now_secs};
use crate::error::{AppError, AppResult};
use crate::secret::SecretString;
use crate::settings::StripeSettings;

/// Billing is on: the client, the webhook secrets, and the worker's wake-up.
pub struct StripeBilling {
    pub client: Stripe,
    pub webhook_secrets: Vec<SecretString>,
    pub livemode: bool,
    pub resync_every: Option<Duration>,
    /// How long an agent's data is kept after its subscription ended.
    pub retention: Duration,
    /// Rung by the webhook handler after storing an event.
    pub wake: tokio::sync::Notify,
}

impl StripeBilling {
    pub fn new(settings: StripeSettings) -> anyhow::Result<Self> {
        let options = billing::stripe::Options::new(&settings.api_base, settings.timeout);
        let client = Stripe::new(settings.secret_key.expose(), options)
            .map_err(|e| anyhow::anyhow!("--stripe-secret-key cannot be used: {e}"))?;
        Ok(Self {
            client,
            webhook_secrets: settings.webhook_secrets,
            livemode: settings.livemode,
            resync_every: settings.resync_every,
            retention: settings.retention,
            wake: tokio::sync::Notify::new(),
        })
    }
}

/// Priority of grants: a month's allowance is spent before packs, which never expire.
const ALLOWANCE_PRIORITY: u8 = 20;
pub(crate) const PACK_PRIORITY: u8 = 50;

/// The plan a user has now, as `GET /api/billing` shows it.
pub struct CurrentPlan<'a> {
    pub plan: &'a Plan,
    /// The Stripe status, or `free` with no subscription.
    pub status: String,
    pub period_end: Option<i64>,
    pub cancel_at_period_end: bool,
    /// The subscription's Price ID when it gives access.
    pub price_id: Option<String>,
}

/// The price a subscription row gives access to now: a downgrade waits for the period's end.
fn effective_price(row: &SubscriptionRow, now: i64) -> &str {
    match (&row.prior_price_id, row.prior_until) {
        (Some(prior), Some(until)) if now < until => prior,
        _ => &row.price_id,
    }
}

/// A placeholder for a price missing from `--plans`: access at no allowance (research §6.2).
fn unknown_plan() -> &'static Plan {
    static UNKNOWN: std::sync::OnceLock<Plan> = std::sync::OnceLock::new();
    UNKNOWN.get_or_init(|| Plan {
        name: "Unknown plan".into(),
        monthly_credits: 0,
        machine_size: None,
        suspend: false,
        idle_timeout: None,
        channels: false,
        amount_cents: None,
    })
}

pub async fn current_plan<'a>(app: &'a App, conn: &Connection, user: &UserId, now: i64) -> AppResult<CurrentPlan<'a>> {
    plan_in(&app.catalog, conn, user, now).await
}

/// [`current_plan`] from the catalog alone, for the agents' spec (built before the `App`).
pub async fn plan_in<'a>(
    catalog: &'a Catalog,
    conn: &Connection,
    user: &UserId,
    now: i64,
) -> AppResult<CurrentPlan<'a>> {
    let rows = subscriptions::of_user(conn, user).await?;
    if let Some(row) = rows.iter().find(|r| has_access(&r.status, r.past_due_since, now)) {
        let price = effective_price(row, now);
        return Ok(CurrentPlan {
            plan: catalog.plan(price).unwrap_or_else(|| unknown_plan()),
            status: row.status.clone(),
            period_end: row.period_end,
            cancel_at_period_end: row.cancel_at_period_end,
            price_id: Some(price.to_string()),
        });
    }
    let status = rows.first().map_or_else(|| "free".to_string(), |r| r.status.clone());
    let (_, month_end) = crate::llm::credit_check::month_of(now);
    Ok(CurrentPlan {
        plan: &catalog.free,
        status,
        period_end: Some(month_end),
        cancel_at_period_end: false,
        price_id: None,
    })
}

/// The idle timeout of the user's plan now: `None` when the plan leaves it to the server's flag
/// (or the plan cannot be read), `Some(None)` for never.
pub async fn idle_timeout_of(app: &App, user: &UserId) -> Option<Option<Duration>> {
    let conn = app.db.conn().ok()?;
    match current_plan(app, &conn, user, now_secs()).await {
        Ok(current) => current.plan.idle_timeout,
        Err(e) => {
            tracing::warn!(user_id = %user, error = %e, "reading the plan's idle timeout failed");
            None
        }
    }
}

/// Whether the user's plan now includes bots (`channels`).
pub async fn plan_allows_channels(app: &App, user: &UserId) -> AppResult<bool> {
    let conn = app.db.conn()?;
    Ok(current_plan(app, &conn, user, now_secs()).await?.plan.channels)
}

/// Whether a connected bot keeps the user's agent on: only while the plan includes bots. A plan
/// read that fails keeps the bot's claim (a database hiccup must not stop the agent).
pub async fn plan_keeps_bots(app: &App, user: &UserId) -> bool {
    plan_allows_channels(app, user).await.unwrap_or_else(|e| {
        tracing::warn!(user_id = %user, error = %e, "reading whether the plan includes bots failed");
        true
    })
}

/// The agent's size and idle choice from the user's plan now: the spec's `guest` (`None`: the
/// plan leaves it to `--fly-machine-size`) and `suspend`.
pub async fn agent_plan(
    db: &crate::db::Db,
    catalog: &Catalog,
    user: &UserId,
) -> Result<(Option<provisioner::fly::Guest>, bool), String> {
    let conn = db.conn().map_err(|e| e.to_string())?;
    let current = plan_in(catalog, &conn, user, now_secs()).await.map_err(|e| e.to_string())?;
    // Checked when the catalog loaded (settings::llm::catalog).
    let guest = current.plan.machine_size.as_deref().and_then(|size| provisioner::fly::parse_machine_size(size).ok());
    Ok((guest, current.plan.suspend))
}

/// Whether the user pays for a plan now (then the free allowance is not theirs).
pub async fn has_paid_access(conn: &Connection, user: &UserId, now: i64) -> Result<bool, libsql::Error> {
    Ok(subscriptions::of_user(conn, user).await?.iter().any(|r| has_access(&r.status, r.past_due_since, now)))
}

/// Whether the user has a subscription that can still change (plan changes go through the Portal).
pub async fn has_live_subscription(conn: &Connection, user: &UserId) -> Result<bool, libsql::Error> {
    Ok(subscriptions::of_user(conn, user).await?.iter().any(|r| is_live(&r.status)))
}

/// A Stripe failure for the browser: what happened in a sentence, the details in the log.
pub fn call_failed(what: &'static str, e: &CallError) -> AppError {
    tracing::warn!(error = %e, what, "a Stripe call failed");
    match e {
        CallError::Refused { .. } => AppError::new(
            axum::http::StatusCode::BAD_GATEWAY,
            "stripe_refused",
            "Stripe refused the request. Try again later, or ask the operator of this server.",
        ),
        CallError::Unavailable { .. } => {
            AppError::unavailable("stripe_unavailable", "Stripe did not answer. Try again in a minute.", 30)
        }
    }
}

/// The user's Stripe customer, created (once) if they have none.
pub async fn ensure_customer(app: &App, stripe: &StripeBilling, user: &UserId) -> AppResult<String> {
    let conn = app.db.conn()?;
    if let Some(customer) = billing_customers::customer_of(&conn, user).await? {
        return Ok(customer);
    }
    let email = users::find_by_id(&conn, user).await?.and_then(|u| u.email);
    // The same key for every try, so two clicks at once (or a retry after a crash) get the same
    // customer back from Stripe's idempotency cache rather than two customers.
    let key = format!("roost-customer-{user}");
    let customer = stripe
        .client
        .create_customer(user.as_str(), email.as_deref(), &key)
        .await
        .map_err(|e| call_failed("creating the customer", &e))?;
    let bound = billing_customers::bind(&conn, user, &customer.id, stripe.livemode, now_secs()).await?;
    bound.ok_or_else(|| AppError::internal(anyhow::anyhow!("the customer binding was not stored")))
}

/// An error of the worker, kept in `stripe_events.last_error`.
pub type SyncResult<T> = Result<T, String>;

fn db(e: libsql::Error) -> String {
    format!("database: {e}")
}

fn stripe(e: CallError) -> String {
    e.to_string()
}

/// The user a Stripe customer belongs to; binds it from the subscription's `metadata[user_id]`
/// (set by Roost's Checkout) when the binding is missing.
async fn user_for(conn: &Connection, customer: &str, claimed: Option<&str>, livemode: bool) -> SyncResult<UserId> {
    if let Some(user) = billing_customers::user_of(conn, customer).await.map_err(db)? {
        return Ok(user);
    }
    let user = claimed
        .and_then(|id| UserId::parse(id).ok())
        .ok_or_else(|| format!("the customer {customer} belongs to no Roost user"))?;
    if users::find_by_id(conn, &user).await.map_err(db)?.is_none() {
        return Err(format!("the customer {customer} names a user that does not exist"));
    }
    match billing_customers::bind(conn, &user, customer, livemode, now_secs()).await.map_err(db)? {
        Some(bound) if bound == customer => Ok(user),
        _ => Err(format!("the user of {customer} is bound to another customer")),
    }
}

/// Fetches the subscription and overwrites its row.
pub async fn sync_subscription(app: &App, stripe: &StripeBilling, id: &str) -> SyncResult<UserId> {
    let subscription = stripe.client.subscription(id).await.map_err(self::stripe)?;
    store_subscription(app, stripe, &subscription).await
}

/// Fetches every subscription of the customer and overwrites their rows.
pub async fn sync_customer(app: &App, stripe: &StripeBilling, customer: &str) -> SyncResult<Vec<Subscription>> {
    let found = stripe.client.subscriptions_of(customer).await.map_err(self::stripe)?;
    for subscription in &found {
        store_subscription(app, stripe, subscription).await?;
    }
    Ok(found)
}

pub(crate) async fn store_subscription(app: &App, stripe: &StripeBilling, s: &Subscription) -> SyncResult<UserId> {
    let conn = app.db.conn().map_err(db)?;
    let user = user_for(&conn, &s.customer, s.user_id(), stripe.livemode).await?;
    let now = now_secs();
    let before = subscriptions::find(&conn, &s.id).await.map_err(db)?;
    let item = s.plan_item();
    let price_id = item.and_then(|i| i.price.as_ref()).map_or_else(String::new, |p| p.id.clone());
    let plan = app.catalog.plan(&price_id).map_or_else(|| "unknown".to_string(), |p| p.name.clone());
    let mut row = SubscriptionRow {
        id: s.id.clone(),
        user_id: user.to_string(),
        customer: s.customer.clone(),
        status: s.status.clone(),
        price_id,
        plan,
        period_start: item.and_then(|i| i.current_period_start),
        period_end: item.and_then(|i| i.current_period_end),
        cancel_at_period_end: s.cancel_at_period_end.unwrap_or(false),
        cancel_at: s.cancel_at,
        ended_at: s.ended_at,
        past_due_since: None,
        prior_price_id: None,
        prior_until: None,
    };
    if let Some(before) = &before {
        if row.status == "past_due" {
            row.past_due_since = before.past_due_since.or(Some(now));
        }
        // A downgrade seen within a paid period keeps the better plan until that period ends.
        let was = effective_price(before, now).to_string();
        let credits = |price: &str| app.catalog.plan(price).map_or(0, |p| p.monthly_credits);
        let paid_until =
            if before.prior_price_id.as_deref() == Some(was.as_str()) { before.prior_until } else { before.period_end };
        if was != row.price_id && credits(&was) > credits(&row.price_id) && paid_until.is_some_and(|t| now < t) {
            row.prior_price_id = Some(was);
            row.prior_until = paid_until;
        }
    } else if row.status == "past_due" {
        row.past_due_since = Some(now);
    }
    subscriptions::upsert(&conn, &row, now).await.map_err(db)?;
    drop(conn);
    access::apply(app, &user, now).await.map_err(db)?;
    Ok(user)
}

/// The month's allowance of a paid invoice, once per invoice.
pub async fn grant_allowance(app: &App, stripe: &StripeBilling, invoice: &Invoice) -> SyncResult<bool> {
    let paid = invoice.status.as_deref() == Some("paid");
    // Not for `subscription_update`: an upgrade's difference is issue 12's remaining work.
    let for_a_period = matches!(invoice.billing_reason.as_deref(), Some("subscription_create" | "subscription_cycle"));
    let Some(customer) = invoice.customer.as_deref() else { return Ok(false) };
    if !paid || !for_a_period {
        return Ok(false);
    }
    let (price, period) = invoice.line();
    let Some(plan) = price.and_then(|p| app.catalog.plan(p)) else {
        tracing::warn!(invoice = %invoice.id, price = ?price, "a paid invoice for a price not in --plans grants nothing");
        return Ok(false);
    };
    let (start, end) = period
        .or(invoice.period_start.zip(invoice.period_end))
        .ok_or_else(|| format!("the invoice {} has no period", invoice.id))?;
    if plan.monthly_credits == 0 {
        return Ok(false);
    }
    let conn = app.db.conn().map_err(db)?;
    let user = user_for(&conn, customer, None, stripe.livemode).await?;
    let source_ref = format!("allowance:{}", invoice.id);
    let grant = NewGrant {
        source: GrantSource::PlanAllowance,
        source_ref: &source_ref,
        amount: plan.monthly_credits,
        priority: ALLOWANCE_PRIORITY,
        effective_at: start,
        expires_at: Some(end),
    };
    let granted = credits::grant_in_turn(&app.db, &user, &grant, now_secs()).await.map_err(db)?;
    if granted {
        app.credit_refusals.forget(&user);
        tracing::info!(user_id = %user, invoice = %invoice.id, credits = plan.monthly_credits, "granted a plan allowance");
    }
    Ok(granted)
}

/// A completed Checkout: binds the customer, syncs the subscription, or grants the pack.
async fn checkout_completed(app: &App, stripe: &StripeBilling, session: &CheckoutSession) -> SyncResult<()> {
    let Some(customer) = session.customer.as_deref() else { return Ok(()) };
    let conn = app.db.conn().map_err(db)?;
    let claimed = session.client_reference_id.as_deref();
    let user = user_for(&conn, customer, claimed, stripe.livemode).await?;
    if claimed.is_some_and(|c| c != user.as_str()) {
        return Err(format!("the session {} names another user than its customer's", session.id));
    }
    match session.mode.as_deref() {
        Some("subscription") => {
            if let Some(id) = session.subscription.as_deref() {
                sync_subscription(app, stripe, id).await?;
            }
        }
        Some("payment") if session.payment_status.as_deref() == Some("paid") => {
            let price = session.price().or_else(|| session.metadata.as_ref()?.get("pack").map(String::as_str));
            let Some(pack) = price.and_then(|p| app.catalog.pack(p)) else {
                tracing::warn!(session = %session.id, price = ?price, "a paid session for a pack not in --plans grants nothing");
                return Ok(());
            };
            let source_ref = format!("pack:{}", session.id);
            let grant = NewGrant {
                source: GrantSource::AddonPack,
                source_ref: &source_ref,
                amount: pack.credits,
                priority: PACK_PRIORITY,
                // From the purchase, whenever its event is handled.
                effective_at: session.created.unwrap_or_else(now_secs),
                expires_at: None,
            };
            let granted = credits::grant_in_turn(&app.db, &user, &grant, now_secs()).await.map_err(db)?;
            if let Some(intent) = session.payment_intent.as_deref() {
                crate::db::credit_voids::record_payment(&conn, intent, &source_ref).await.map_err(db)?;
            }
            if granted {
                app.credit_refusals.forget(&user);
                tracing::info!(user_id = %user, session = %session.id, credits = pack.credits, "granted a credit pack");
            }
        }
        _ => {}
    }
    Ok(())
}

/// Handles one stored event by its type and object id; its payload is never read.
pub async fn handle(app: &App, stripe: &StripeBilling, kind: &str, object_id: Option<&str>) -> SyncResult<()> {
    let Some(id) = object_id else { return Ok(()) };
    match kind {
        "checkout.session.completed" | "checkout.session.async_payment_succeeded" => {
            let session = stripe.client.checkout_session(id).await.map_err(self::stripe)?;
            checkout_completed(app, stripe, &session).await
        }
        "customer.subscription.created"
        | "customer.subscription.updated"
        | "customer.subscription.deleted"
        | "customer.subscription.paused"
        | "customer.subscription.resumed" => sync_subscription(app, stripe, id).await.map(|_| ()),
        "invoice.paid" | "invoice.payment_failed" | "invoice.payment_succeeded" => {
            let invoice = stripe.client.invoice(id).await.map_err(self::stripe)?;
            if let Some(subscription) = invoice.subscription() {
                sync_subscription(app, stripe, subscription).await?;
            }
            grant_allowance(app, stripe, &invoice).await.map(|_| ())
        }
        "payment_intent.succeeded" => refill::payment_succeeded(app, stripe, id).await,
        "charge.refunded" => refunds::charge_refunded(app, stripe, id).await,
        "charge.dispute.created" => refunds::dispute_created(app, stripe, id).await,
        _ => Ok(()),
    }
}

/// Re-syncs one customer as if every event had been missed: their subscriptions, and the
/// allowance of each one's latest invoice.
pub async fn resync_customer(app: &App, stripe: &StripeBilling, customer: &str) -> SyncResult<()> {
    for subscription in sync_customer(app, stripe, customer).await? {
        if let Some(invoice) = subscription.latest_invoice.as_deref() {
            let invoice = stripe.client.invoice(invoice).await.map_err(self::stripe)?;
            grant_allowance(app, stripe, &invoice).await?;
        }
    }
    Ok(())
}
