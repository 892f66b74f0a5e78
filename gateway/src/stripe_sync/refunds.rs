//! A refunded or disputed payment takes back the credits it bought (research: stripe-billing
//! §5.5, §6.3): the charge is re-fetched, its PaymentIntent names the grant, and the grant's
//! remaining credits are voided once. A partial refund voids nothing and flags the account.

use billing::stripe::client::Charge;

use super::{StripeBilling, SyncResult, db, stripe};
use crate::app::App;
use crate::db::{billing_customers, credit_voids};
use crate::domain::now_secs;

pub async fn charge_refunded(app: &App, billing: &StripeBilling, charge_id: &str) -> SyncResult<()> {
    let charge = billing.client.charge(charge_id).await.map_err(stripe)?;
    if charge.refunded == Some(true) {
        return void_paid_by(app, &charge, &format!("refund:{}", charge.id)).await;
    }
    if charge.amount_refunded.unwrap_or(0) > 0 {
        partial(app, &charge).await?;
    }
    Ok(())
}

pub async fn dispute_created(app: &App, billing: &StripeBilling, dispute_id: &str) -> SyncResult<()> {
    let dispute = billing.client.dispute(dispute_id).await.map_err(stripe)?;
    let Some(charge) = dispute.charge.as_deref() else { return Ok(()) };
    let charge = billing.client.charge(charge).await.map_err(stripe)?;
    void_paid_by(app, &charge, &format!("dispute:{}", dispute.id)).await
}

async fn void_paid_by(app: &App, charge: &Charge, why: &str) -> SyncResult<()> {
    let Some(intent) = charge.payment_intent.as_deref() else { return Ok(()) };
    let Some(source_ref) = credit_voids::grant_paid_by(&*app.db.conn().map_err(db)?, intent).await.map_err(db)? else {
        // A subscription's invoice, or a payment Roost did not grant credits for.
        tracing::info!(charge = %charge.id, why, "a refunded or disputed charge paid for no credit pack");
        return Ok(());
    };
    if let Some(voided) = credit_voids::void_grant(&app.db, &source_ref, why, now_secs()).await.map_err(db)? {
        tracing::warn!(user_id = %voided.user, grant = %source_ref, credits = voided.credits, spent = voided.spent, why,
                       "voided the credits of a refunded or disputed payment");
    }
    Ok(())
}

async fn partial(app: &App, charge: &Charge) -> SyncResult<()> {
    let conn = app.db.conn().map_err(db)?;
    let Some(intent) = charge.payment_intent.as_deref() else { return Ok(()) };
    if credit_voids::grant_paid_by(&conn, intent).await.map_err(db)?.is_none() {
        return Ok(());
    }
    let Some(customer) = stripe_customer(app, charge).await? else { return Ok(()) };
    let Some(user) = billing_customers::user_of(&conn, &customer).await.map_err(db)? else { return Ok(()) };
    let reason = format!("partial refund of {}: credits kept, check by hand", charge.id);
    tracing::warn!(user_id = %user, charge = %charge.id, "a credit pack was partly refunded; flagged for review");
    credit_voids::flag_for_review(&conn, &user, &reason, now_secs()).await.map_err(db)
}

async fn stripe_customer(app: &App, charge: &Charge) -> SyncResult<Option<String>> {
    let Some(billing) = app.stripe.as_ref() else { return Ok(None) };
    let Some(intent) = charge.payment_intent.as_deref() else { return Ok(None) };
    Ok(billing.client.payment_intent(intent).await.map_err(stripe)?.customer)
}
