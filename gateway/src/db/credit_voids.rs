//! Taking back credits whose payment was refunded or disputed (research: stripe-billing §5.5):
//! the payment behind each paid grant (`grant_payments`, migration 0007), and the void itself,
//! which closes what is left of the grant once. Spent credits are not clawed back (the balance
//! never goes below zero); the account is flagged for review instead.

use libsql::{Connection, TransactionBehavior};

use super::{Db, first_row};
use crate::domain::UserId;

/// Remembers that `payment_intent` paid for the grant `source_ref`; a repeat does nothing.
pub async fn record_payment(conn: &Connection, payment_intent: &str, source_ref: &str) -> Result<(), libsql::Error> {
    conn.execute(
        "INSERT INTO grant_payments (payment_intent, grant_source_ref) VALUES (?1, ?2) ON CONFLICT DO NOTHING",
        (payment_intent, source_ref),
    )
    .await?;
    Ok(())
}

pub async fn grant_paid_by(conn: &Connection, payment_intent: &str) -> Result<Option<String>, libsql::Error> {
    let rows =
        conn.query("SELECT grant_source_ref FROM grant_payments WHERE payment_intent = ?1", [payment_intent]).await?;
    first_row(rows, |row| row.get::<String>(0)).await
}

/// What a void did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Voided {
    pub user: UserId,
    /// Credits taken out of the balance (what was left of the grant).
    pub credits: i64,
    /// Credits of the grant already spent, which stay spent.
    pub spent: i64,
}

/// Voids the grant `source_ref` once: its remaining credits leave the balance with a `void`
/// ledger row (`ref` names the refund or dispute). `None`: no such grant, or voided before.
pub async fn void_grant(db: &Db, source_ref: &str, why: &str, now: i64) -> Result<Option<Voided>, libsql::Error> {
    let _turn = db.write_turn().await;
    let conn = db.conn()?;
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate).await?;
    let found = first_row(
        tx.query(
            "SELECT id, user_id, amount, remaining FROM credit_grants WHERE source_ref = ?1 AND voided_at IS NULL",
            [source_ref],
        )
        .await?,
        |row| Ok((row.get::<i64>(0)?, row.get::<String>(1)?, row.get::<i64>(2)?, row.get::<i64>(3)?)),
    )
    .await?;
    let Some((id, user, amount, remaining)) = found else {
        tx.rollback().await?;
        return Ok(None);
    };
    let Ok(user) = UserId::parse(&user) else {
        tx.rollback().await?;
        return Ok(None);
    };
    tx.execute("UPDATE credit_grants SET remaining = 0, voided_at = ?2 WHERE id = ?1", (id, now)).await?;
    if remaining > 0 {
        tx.execute(
            "INSERT INTO credit_ledger (user_id, entry_type, delta, grant_id, ref, created_at)
             VALUES (?1, 'void', ?2, ?3, ?4, ?5)",
            (user.as_str(), -remaining, id, why, now),
        )
        .await?;
        tx.execute(
            "UPDATE credit_accounts SET balance = balance - ?2, updated_at = ?3 WHERE user_id = ?1",
            (user.as_str(), remaining, now),
        )
        .await?;
    }
    let spent = amount - remaining;
    if spent > 0 {
        tx.execute(
            "UPDATE credit_accounts SET review_reason = ?2, updated_at = ?3 WHERE user_id = ?1",
            (user.as_str(), format!("{why}: {spent} of its {amount} credits were already spent"), now),
        )
        .await?;
    }
    tx.commit().await?;
    Ok(Some(Voided { user, credits: remaining, spent }))
}

/// Flags the account for an operator to look at (a partial refund, which voids nothing).
pub async fn flag_for_review(conn: &Connection, user: &UserId, reason: &str, now: i64) -> Result<(), libsql::Error> {
    conn.execute(
        "UPDATE credit_accounts SET review_reason = ?2, updated_at = ?3 WHERE user_id = ?1",
        (user.as_str(), reason, now),
    )
    .await?;
    Ok(())
}
