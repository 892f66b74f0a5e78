//! The Stripe customer of each user, created once before their first Checkout.

use libsql::Connection;

use super::first_row;
use crate::domain::UserId;

pub async fn customer_of(conn: &Connection, user: &UserId) -> Result<Option<String>, libsql::Error> {
    let rows =
        conn.query("SELECT stripe_customer_id FROM billing_customers WHERE user_id = ?1", [user.as_str()]).await?;
    first_row(rows, |row| row.get::<String>(0)).await
}

pub async fn user_of(conn: &Connection, customer: &str) -> Result<Option<UserId>, libsql::Error> {
    let rows = conn.query("SELECT user_id FROM billing_customers WHERE stripe_customer_id = ?1", [customer]).await?;
    Ok(first_row(rows, |row| row.get::<String>(0)).await?.and_then(|id| UserId::parse(&id).ok()))
}

/// Binds `customer` to `user` unless either is bound already; returns the user's customer.
pub async fn bind(
    conn: &Connection,
    user: &UserId,
    customer: &str,
    livemode: bool,
    now: i64,
) -> Result<Option<String>, libsql::Error> {
    conn.execute(
        "INSERT INTO billing_customers (user_id, stripe_customer_id, livemode, created_at) VALUES (?1, ?2, ?3, ?4)
         ON CONFLICT DO NOTHING",
        (user.as_str(), customer, i64::from(livemode), now),
    )
    .await?;
    customer_of(conn, user).await
}

/// Every bound customer, for the periodic re-sync; `after` pages through them.
pub async fn page(conn: &Connection, after: &str, limit: u32) -> Result<Vec<String>, libsql::Error> {
    let mut rows = conn
        .query(
            "SELECT stripe_customer_id FROM billing_customers WHERE stripe_customer_id > ?1
              ORDER BY stripe_customer_id LIMIT ?2",
            (after, i64::from(limit)),
        )
        .await?;
    let mut out = Vec::new();
    while let Some(row) = rows.next().await? {
        out.push(row.get::<String>(0)?);
    }
    Ok(out)
}
