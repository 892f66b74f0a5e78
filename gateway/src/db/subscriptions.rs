//! A mirror of each Stripe subscription, overwritten by every sync from the API.

use libsql::Connection;

use super::first_row;
use crate::domain::UserId;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubscriptionRow {
    pub id: String,
    pub user_id: String,
    pub customer: String,
    pub status: String,
    pub price_id: String,
    pub plan: String,
    pub period_start: Option<i64>,
    pub period_end: Option<i64>,
    pub cancel_at_period_end: bool,
    pub cancel_at: Option<i64>,
    pub ended_at: Option<i64>,
    pub past_due_since: Option<i64>,
    pub prior_price_id: Option<String>,
    pub prior_until: Option<i64>,
}

const COLUMNS: &str = "stripe_subscription_id, user_id, stripe_customer_id, status, price_id, plan, period_start, \
                       period_end, cancel_at_period_end, cancel_at, ended_at, past_due_since, prior_price_id, prior_until";

fn from_row(row: &libsql::Row) -> Result<SubscriptionRow, libsql::Error> {
    Ok(SubscriptionRow {
        id: row.get(0)?,
        user_id: row.get(1)?,
        customer: row.get(2)?,
        status: row.get(3)?,
        price_id: row.get(4)?,
        plan: row.get(5)?,
        period_start: row.get(6)?,
        period_end: row.get(7)?,
        cancel_at_period_end: row.get::<i64>(8)? != 0,
        cancel_at: row.get(9)?,
        ended_at: row.get(10)?,
        past_due_since: row.get(11)?,
        prior_price_id: row.get(12)?,
        prior_until: row.get(13)?,
    })
}

pub async fn find(conn: &Connection, id: &str) -> Result<Option<SubscriptionRow>, libsql::Error> {
    let rows =
        conn.query(&format!("SELECT {COLUMNS} FROM subscriptions WHERE stripe_subscription_id = ?1"), [id]).await?;
    first_row(rows, from_row).await
}

/// The user's subscriptions, the one that ends last first.
pub async fn of_user(conn: &Connection, user: &UserId) -> Result<Vec<SubscriptionRow>, libsql::Error> {
    let mut rows = conn
        .query(
            &format!(
                "SELECT {COLUMNS} FROM subscriptions WHERE user_id = ?1
                  ORDER BY coalesce(period_end, 0) DESC, stripe_subscription_id LIMIT 20"
            ),
            [user.as_str()],
        )
        .await?;
    let mut out = Vec::new();
    while let Some(row) = rows.next().await? {
        out.push(from_row(&row)?);
    }
    Ok(out)
}

/// Writes the row as synced, whole.
pub async fn upsert(conn: &Connection, s: &SubscriptionRow, now: i64) -> Result<(), libsql::Error> {
    conn.execute(
        &format!(
            "INSERT INTO subscriptions ({COLUMNS}, synced_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15)
             ON CONFLICT (stripe_subscription_id) DO UPDATE SET
               user_id = excluded.user_id, stripe_customer_id = excluded.stripe_customer_id, status = excluded.status,
               price_id = excluded.price_id, plan = excluded.plan, period_start = excluded.period_start,
               period_end = excluded.period_end, cancel_at_period_end = excluded.cancel_at_period_end,
               cancel_at = excluded.cancel_at, ended_at = excluded.ended_at, past_due_since = excluded.past_due_since,
               prior_price_id = excluded.prior_price_id, prior_until = excluded.prior_until, synced_at = excluded.synced_at"
        ),
        libsql::params![
            s.id.as_str(),
            s.user_id.as_str(),
            s.customer.as_str(),
            s.status.as_str(),
            s.price_id.as_str(),
            s.plan.as_str(),
            s.period_start,
            s.period_end,
            i64::from(s.cancel_at_period_end),
            s.cancel_at,
            s.ended_at,
            s.past_due_since,
            s.prior_price_id.as_deref(),
            s.prior_until,
            now,
        ],
    )
    .await?;
    Ok(())
}

/// Subscriptions of deleted accounts that Stripe may still charge, due for a cancellation
/// attempt at `now`: the queue of account deletions' cancellations.
pub async fn to_cancel_for_deleted_users(
    conn: &Connection,
    now: i64,
    limit: u32,
) -> Result<Vec<(String, i64)>, libsql::Error> {
    let mut rows = conn
        .query(
            "SELECT s.stripe_subscription_id, s.cancel_attempts FROM subscriptions s JOIN users u ON u.id = s.user_id
              WHERE u.deleted_at IS NOT NULL AND s.status NOT IN ('canceled', 'incomplete_expired')
                AND s.cancel_next_at <= ?1
              ORDER BY s.cancel_next_at LIMIT ?2",
            (now, i64::from(limit)),
        )
        .await?;
    let mut out = Vec::new();
    while let Some(row) = rows.next().await? {
        out.push((row.get(0)?, row.get(1)?));
    }
    Ok(out)
}

pub async fn cancel_failed(conn: &Connection, id: &str, retry_at: i64) -> Result<(), libsql::Error> {
    conn.execute(
        "UPDATE subscriptions SET cancel_attempts = cancel_attempts + 1, cancel_next_at = ?2
          WHERE stripe_subscription_id = ?1",
        (id, retry_at),
    )
    .await?;
    Ok(())
}

/// Stripe no longer knows the subscription: nothing is left to cancel.
pub async fn mark_gone(conn: &Connection, id: &str, now: i64) -> Result<(), libsql::Error> {
    conn.execute(
        "UPDATE subscriptions SET status = 'canceled', ended_at = coalesce(ended_at, ?2), synced_at = ?2
          WHERE stripe_subscription_id = ?1",
        (id, now),
    )
    .await?;
    Ok(())
}
