//! Auto-refill: when a user who turned it on runs low, one off-session charge of their saved
//! card buys their chosen pack, within their monthly cap. Exactly once: each charge has its own
//! Idempotency-Key (user, month, count), kept with a pending attempt before the call, so a retry
//! after a lost answer is the same charge; credits are granted only once Stripe says the payment
//! succeeded (the answer, a re-fetch, or `payment_intent.succeeded`), keyed by the PaymentIntent.
//! A failed refill is kept and shown; no more tries until the user saves the settings again.

use billing::refill::{LOW_BALANCE_CREDITS, RefillMonth, RefillSettings, due, idempotency_key};
use billing::stripe::CallError;
use billing::stripe::client::{NewCharge, PaymentIntent};

use super::{PACK_PRIORITY, StripeBilling, SyncResult, db, stripe};
use crate::app::App;
use crate::db::auto_refills::{self, Attempt};
use crate::db::credits::{self, GrantSource, NewGrant};
use crate::db::{billing_customers, credit_voids};
use crate::domain::{UserId, now_secs};
use crate::llm::credit_check::month_of;

/// Users looked at per pass.
const BATCH: u32 = 20;

pub fn month_key(now: i64) -> String {
    month_of(now).0.to_string()
}

/// One pass over the users who are low with auto-refill on.
pub async fn run_due(app: &App, billing: &StripeBilling) -> Result<usize, libsql::Error> {
    let users = auto_refills::low_and_enabled(&*app.db.conn()?, LOW_BALANCE_CREDITS, BATCH).await?;
    let mut charged = 0;
    for user in users {
        match refill(app, billing, &user).await {
            Ok(true) => charged += 1,
            Ok(false) => {}
            Err(error) => tracing::warn!(user_id = %user, %error, "an auto-refill could not be made"),
        }
    }
    Ok(charged)
}

async fn refill(app: &App, billing: &StripeBilling, user: &UserId) -> SyncResult<bool> {
    let now = now_secs();
    let month = month_key(now);
    let conn = app.db.conn().map_err(db)?;
    let Some(settings) = auto_refills::settings(&conn, user).await.map_err(db)? else { return Ok(false) };
    let Some(pack) = app.catalog.pack(&settings.pack) else { return Ok(false) };
    let attempts = auto_refills::attempts(&conn, user, &month).await.map_err(db)?;
    // A charge whose outcome is unknown is finished first, with its own key.
    if let Some(pending) = attempts.iter().find(|a| a.status == "pending") {
        return resume(app, billing, user, &month, pending).await;
    }
    let balance = credits::spendable(&conn, user, now, month_of(now).0).await.map_err(db)?.balance;
    let so_far = RefillMonth {
        credits: attempts.iter().filter(|a| a.status == "succeeded").map(|a| a.credits).sum(),
        pending: false,
        failed_since_saved: attempts.iter().any(|a| a.status == "failed" && a.created_at >= settings.updated_at),
    };
    let rule = RefillSettings {
        enabled: settings.enabled,
        pack_credits: i64::try_from(pack.credits).unwrap_or(i64::MAX),
        monthly_cap: settings.monthly_cap,
    };
    if !due(rule, balance, so_far) {
        return Ok(false);
    }
    let n = attempts.iter().map(|a| a.n).max().unwrap_or(0) + 1;
    let Some(id) =
        auto_refills::begin(&conn, user, &month, n, &settings.pack, rule.pack_credits, now).await.map_err(db)?
    else {
        return Ok(false);
    };
    let attempt = Attempt {
        id,
        n,
        pack: settings.pack.clone(),
        credits: rule.pack_credits,
        payment_intent: None,
        status: "pending".into(),
        error: None,
        created_at: now,
    };
    resume(app, billing, user, &month, &attempt).await
}

/// Sends (or re-sends, with the same key) the attempt's charge, or re-fetches its payment.
async fn resume(app: &App, billing: &StripeBilling, user: &UserId, month: &str, attempt: &Attempt) -> SyncResult<bool> {
    let conn = app.db.conn().map_err(db)?;
    let fail = |why: &'static str| async move {
        auto_refills::settle(&*app.db.conn().map_err(db)?, attempt.id, "failed", Some(why), now_secs())
            .await
            .map_err(db)?;
        tracing::warn!(user_id = %user, why, "an auto-refill failed");
        Ok(false)
    };
    if let Some(intent) = &attempt.payment_intent {
        let intent = billing.client.payment_intent(intent).await.map_err(stripe)?;
        return settle(app, user, attempt, &intent).await;
    }
    let Some(pack) = app.catalog.pack(&attempt.pack) else { return fail("The pack is no longer offered.").await };
    let Some(amount_cents) = pack.amount_cents else { return fail("The pack has no price set.").await };
    let Some(customer) = billing_customers::customer_of(&conn, user).await.map_err(db)? else {
        return fail("There is no saved card: buy a plan or a pack first.").await;
    };
    let card = billing.client.customer(&customer).await.map_err(stripe)?;
    let Some(card) = card.invoice_settings.and_then(|s| s.default_payment_method) else {
        return fail("There is no saved card: add one in the billing portal.").await;
    };
    let charge = NewCharge {
        customer: &customer,
        payment_method: &card,
        amount_cents,
        currency: "usd",
        user_id: user.as_str(),
        pack: &attempt.pack,
    };
    let key = idempotency_key(user.as_str(), month, attempt.n);
    match billing.client.charge_saved_card(&charge, &key).await {
        Ok(intent) => {
            auto_refills::set_payment_intent(&conn, attempt.id, &intent.id).await.map_err(db)?;
            settle(app, user, attempt, &intent).await
        }
        Err(CallError::Refused { status: 402, .. }) => fail("Your card was declined.").await,
        Err(CallError::Refused { .. }) => fail("Stripe refused the charge.").await,
        // Unknown whether it was charged: the next pass retries with the same key.
        Err(e) => Err(e.to_string()),
    }
}

async fn settle(app: &App, user: &UserId, attempt: &Attempt, intent: &PaymentIntent) -> SyncResult<bool> {
    let conn = app.db.conn().map_err(db)?;
    match intent.status.as_deref() {
        Some("succeeded") => {
            let granted = credit(app, user, &intent.id, &attempt.pack).await?;
            auto_refills::settle(&conn, attempt.id, "succeeded", None, now_secs()).await.map_err(db)?;
            Ok(granted)
        }
        Some("canceled" | "requires_payment_method") => {
            auto_refills::settle(&conn, attempt.id, "failed", Some("Your card was declined."), now_secs())
                .await
                .map_err(db)?;
            Ok(false)
        }
        // processing, requires_action: the webhook or the next pass settles it.
        _ => Ok(false),
    }
}

/// Grants the pack a succeeded PaymentIntent paid for, once per PaymentIntent.
async fn credit(app: &App, user: &UserId, intent: &str, pack_price: &str) -> SyncResult<bool> {
    let Some(pack) = app.catalog.pack(pack_price) else { return Ok(false) };
    let source_ref = format!("refill:{intent}");
    let grant = NewGrant {
        source: GrantSource::AddonPack,
        source_ref: &source_ref,
        amount: pack.credits,
        priority: PACK_PRIORITY,
        effective_at: now_secs(),
        expires_at: None,
    };
    let granted = credits::grant_in_turn(&app.db, user, &grant, now_secs()).await.map_err(db)?;
    credit_voids::record_payment(&*app.db.conn().map_err(db)?, intent, &source_ref).await.map_err(db)?;
    if granted {
        app.credit_refusals.forget(user);
        tracing::info!(user_id = %user, payment_intent = %intent, credits = pack.credits, "auto-refilled");
    }
    Ok(granted)
}

/// `payment_intent.succeeded`: re-fetched; an auto-refill's is credited (once) and its attempt
/// settled.
pub async fn payment_succeeded(app: &App, billing: &StripeBilling, id: &str) -> SyncResult<()> {
    let intent = billing.client.payment_intent(id).await.map_err(stripe)?;
    let metadata = intent.metadata.clone().unwrap_or_default();
    if metadata.get("kind").map(String::as_str) != Some("auto_refill") || intent.status.as_deref() != Some("succeeded")
    {
        return Ok(());
    }
    let (Some(customer), Some(pack)) = (intent.customer.as_deref(), metadata.get("pack")) else { return Ok(()) };
    let conn = app.db.conn().map_err(db)?;
    let Some(user) = billing_customers::user_of(&conn, customer).await.map_err(db)? else { return Ok(()) };
    credit(app, &user, &intent.id, pack).await?;
    if let Some(attempt) = auto_refills::by_payment_intent(&conn, &intent.id).await.map_err(db)? {
        auto_refills::settle(&conn, attempt, "succeeded", None, now_secs()).await.map_err(db)?;
    }
    Ok(())
}
