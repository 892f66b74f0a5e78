//! The credits ledger (migration 0004). Grants add credits in buckets; a model call is recorded
//! and debited in one `BEGIN IMMEDIATE` transaction, keyed by its idempotency key, so it is
//! charged exactly once however often the write is retried; the ledger is only ever appended to.

use libsql::{Connection, TransactionBehavior};

use crate::db::usage_events::NewUsageEvent;
use crate::db::{Db, first_row};
use crate::domain::UserId;

/// Why a grant was made; each maps to a `source` of `credit_grants`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GrantSource {
    FreeAllowance,
    PlanAllowance,
    AddonPack,
    Adjustment,
}

impl GrantSource {
    fn as_str(self) -> &'static str {
        match self {
            Self::FreeAllowance => "free_allowance",
            Self::PlanAllowance => "plan_allowance",
            Self::AddonPack => "addon_pack",
            Self::Adjustment => "adjustment",
        }
    }
}

pub struct NewGrant<'a> {
    pub source: GrantSource,
    /// Unique per reason: granting twice with the same ref grants once.
    pub source_ref: &'a str,
    pub amount: u64,
    pub priority: u8,
    pub effective_at: i64,
    pub expires_at: Option<i64>,
}

/// [`grant`] on a connection of its own, in this process's turn to write (`Db::write_turn`).
pub async fn grant_in_turn(db: &Db, user: &UserId, new: &NewGrant<'_>, now: i64) -> Result<bool, libsql::Error> {
    let _turn = db.write_turn().await;
    grant(&*db.conn()?, user, new, now).await
}

/// [`record_and_debit`] on a connection of its own, in this process's turn to write.
pub async fn record_and_debit_in_turn(
    db: &Db,
    event: &NewUsageEvent<'_>,
    cost: u64,
) -> Result<Option<Debit>, libsql::Error> {
    let _turn = db.write_turn().await;
    record_and_debit(&*db.conn()?, event, cost).await
}

fn credits(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

async fn ensure_account(conn: &Connection, user: &UserId, now: i64) -> Result<(), libsql::Error> {
    conn.execute(
        "INSERT INTO credit_accounts (user_id, updated_at) VALUES (?1, ?2) ON CONFLICT (user_id) DO NOTHING",
        (user.as_str(), now),
    )
    .await?;
    Ok(())
}

/// Adds the grant unless its `source_ref` was granted before. True if this call granted it.
pub async fn grant(conn: &Connection, user: &UserId, grant: &NewGrant<'_>, now: i64) -> Result<bool, libsql::Error> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate).await?;
    ensure_account(&tx, user, now).await?;
    let id = first_row(
        tx.query(
            "INSERT INTO credit_grants
                 (user_id, source, source_ref, amount, remaining, priority, effective_at, expires_at, created_at)
             VALUES (?1, ?2, ?3, ?4, ?4, ?5, ?6, ?7, ?8)
             ON CONFLICT (source_ref) DO NOTHING RETURNING id",
            (
                user.as_str(),
                grant.source.as_str(),
                grant.source_ref,
                credits(grant.amount),
                i64::from(grant.priority),
                grant.effective_at,
                grant.expires_at,
                now,
            ),
        )
        .await?,
        |row| row.get::<i64>(0),
    )
    .await?;
    let Some(id) = id else {
        tx.rollback().await?;
        return Ok(false);
    };
    tx.execute(
        "INSERT INTO credit_ledger (user_id, entry_type, delta, grant_id, ref, created_at)
         VALUES (?1, 'grant', ?2, ?3, ?4, ?5)",
        (user.as_str(), credits(grant.amount), id, grant.source_ref, now),
    )
    .await?;
    tx.execute(
        "UPDATE credit_accounts SET balance = balance + ?2, updated_at = ?3 WHERE user_id = ?1",
        (user.as_str(), credits(grant.amount), now),
    )
    .await?;
    tx.commit().await?;
    Ok(true)
}

pub async fn has_grant(conn: &Connection, source_ref: &str) -> Result<bool, libsql::Error> {
    let rows = conn.query("SELECT 1 FROM credit_grants WHERE source_ref = ?1", [source_ref]).await?;
    Ok(first_row(rows, |_| Ok(())).await?.is_some())
}

/// What a user may still spend now, and their own monthly cap against this month's spending.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Spendable {
    /// Credits in grants that are in effect and not expired.
    pub balance: i64,
    pub monthly_budget: Option<i64>,
    pub spent_this_month: i64,
}

impl Spendable {
    pub fn budget_reached(&self) -> bool {
        self.monthly_budget.is_some_and(|cap| self.spent_this_month >= cap)
    }
}

pub async fn spendable(
    conn: &Connection,
    user: &UserId,
    now: i64,
    month_start: i64,
) -> Result<Spendable, libsql::Error> {
    let rows = conn
        .query(
            "SELECT
                (SELECT coalesce(sum(remaining), 0) FROM credit_grants
                  WHERE user_id = ?1 AND remaining > 0 AND voided_at IS NULL
                    AND effective_at <= ?2 AND (expires_at IS NULL OR expires_at > ?2)),
                (SELECT monthly_budget FROM credit_accounts WHERE user_id = ?1),
                (SELECT coalesce(sum(credits), 0) FROM usage_events WHERE user_id = ?1 AND created_at >= ?3)",
            (user.as_str(), now, month_start),
        )
        .await?;
    let found = first_row(rows, |row| {
        Ok(Spendable { balance: row.get(0)?, monthly_budget: row.get(1)?, spent_this_month: row.get(2)? })
    })
    .await?;
    Ok(found.unwrap_or(Spendable { balance: 0, monthly_budget: None, spent_this_month: 0 }))
}

pub async fn set_monthly_budget(
    conn: &Connection,
    user: &UserId,
    budget: Option<u64>,
    now: i64,
) -> Result<(), libsql::Error> {
    ensure_account(conn, user, now).await?;
    conn.execute(
        "UPDATE credit_accounts SET monthly_budget = ?2, updated_at = ?3 WHERE user_id = ?1",
        (user.as_str(), budget.map(credits), now),
    )
    .await?;
    Ok(())
}

/// How a recorded call was paid for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Debit {
    pub credits: i64,
    pub from_grants: i64,
    pub shortfall: i64,
}

/// Which live grants `wanted` credits come from, in spending order (lowest priority number
/// first, then soonest to expire), as `(grant id, credits)`, and how many they cover in all.
async fn spending_plan(
    tx: &libsql::Transaction,
    user: &UserId,
    now: i64,
    wanted: i64,
) -> Result<(Vec<(i64, i64)>, i64), libsql::Error> {
    let mut live = tx
        .query(
            "SELECT id, remaining FROM credit_grants
              WHERE user_id = ?1 AND remaining > 0 AND voided_at IS NULL
                AND effective_at <= ?2 AND (expires_at IS NULL OR expires_at > ?2)
              ORDER BY priority, expires_at IS NULL, expires_at, id",
            (user.as_str(), now),
        )
        .await?;
    let mut plan = Vec::new();
    let mut covered = 0i64;
    while covered < wanted
        && let Some(row) = live.next().await?
    {
        let (id, remaining): (i64, i64) = (row.get(0)?, row.get(1)?);
        let take = remaining.min(wanted - covered);
        plan.push((id, take));
        covered += take;
    }
    Ok((plan, covered))
}

/// Records the call and debits its `cost` from the user's live grants (lowest priority number
/// first, then soonest to expire), in one transaction. `None`: this key was recorded already,
/// and nothing was written again.
pub async fn record_and_debit(
    conn: &Connection,
    event: &NewUsageEvent<'_>,
    cost: u64,
) -> Result<Option<Debit>, libsql::Error> {
    let user = event.user_id;
    let now = event.created_at;
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate).await?;
    let seen = tx.query("SELECT 1 FROM usage_events WHERE idempotency_key = ?1", [event.idempotency_key]).await?;
    if first_row(seen, |_| Ok(())).await?.is_some() {
        tx.rollback().await?;
        return Ok(None);
    }
    ensure_account(&tx, user, now).await?;
    let cost = credits(cost);
    let (plan, covered) = spending_plan(&tx, user, now, cost).await?;
    let debit = Debit { credits: cost, from_grants: covered, shortfall: cost - covered };
    let tokens = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
    let usage_id = first_row(
        tx.query(
            "INSERT INTO usage_events
                 (user_id, idempotency_key, api, model, input_tokens, output_tokens, upstream_status, complete,
                  created_at, credits, from_grants, shortfall)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12) RETURNING id",
            libsql::params![
                user.as_str(),
                event.idempotency_key,
                event.api,
                event.model,
                tokens(event.input_tokens),
                tokens(event.output_tokens),
                i64::from(event.upstream_status),
                i64::from(event.complete),
                now,
                debit.credits,
                debit.from_grants,
                debit.shortfall,
            ],
        )
        .await?,
        |row| row.get::<i64>(0),
    )
    .await?;
    for (grant_id, take) in plan {
        let changed = tx
            .execute(
                "UPDATE credit_grants SET remaining = remaining - ?2 WHERE id = ?1 AND remaining >= ?2",
                (grant_id, take),
            )
            .await?;
        // The write lock is ours since BEGIN IMMEDIATE: the grant cannot have moved.
        debug_assert_eq!(changed, 1);
        tx.execute(
            "INSERT INTO credit_ledger (user_id, entry_type, delta, grant_id, usage_event_id, created_at)
             VALUES (?1, 'debit', ?2, ?3, ?4, ?5)",
            (user.as_str(), -take, grant_id, usage_id, now),
        )
        .await?;
    }
    if covered > 0 {
        tx.execute(
            "UPDATE credit_accounts SET balance = balance - ?2, updated_at = ?3 WHERE user_id = ?1",
            (user.as_str(), covered, now),
        )
        .await?;
    }
    tx.commit().await?;
    Ok(Some(debit))
}

/// Takes `amount` credits away by hand (an admin's adjustment, `reference` naming it): from the
/// user's live grants in spending order, one `adjust` ledger row per grant, in this process's
/// turn to write. Never more than they hold: returns what was taken, `None` if `reference` was
/// used before.
pub async fn take_back_in_turn(
    db: &Db,
    user: &UserId,
    amount: u64,
    reference: &str,
    now: i64,
) -> Result<Option<i64>, libsql::Error> {
    let _turn = db.write_turn().await;
    let conn = db.conn()?;
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate).await?;
    let seen = tx.query("SELECT 1 FROM credit_ledger WHERE ref = ?1", [reference]).await?;
    if first_row(seen, |_| Ok(())).await?.is_some() {
        tx.rollback().await?;
        return Ok(None);
    }
    ensure_account(&tx, user, now).await?;
    let (plan, taken) = spending_plan(&tx, user, now, credits(amount)).await?;
    for (grant_id, take) in plan {
        tx.execute(
            "UPDATE credit_grants SET remaining = remaining - ?2 WHERE id = ?1 AND remaining >= ?2",
            (grant_id, take),
        )
        .await?;
        tx.execute(
            "INSERT INTO credit_ledger (user_id, entry_type, delta, grant_id, ref, created_at)
             VALUES (?1, 'adjust', ?2, ?3, ?4, ?5)",
            (user.as_str(), -take, grant_id, reference, now),
        )
        .await?;
    }
    if taken > 0 {
        tx.execute(
            "UPDATE credit_accounts SET balance = balance - ?2, updated_at = ?3 WHERE user_id = ?1",
            (user.as_str(), taken, now),
        )
        .await?;
    }
    tx.commit().await?;
    Ok(Some(taken))
}

/// One row of a user's ledger, as the admin view shows it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct LedgerRow {
    pub at: i64,
    pub entry_type: String,
    pub delta: i64,
    pub reference: Option<String>,
}

/// The user's newest ledger rows first, at most `limit`.
pub async fn ledger(conn: &Connection, user: &UserId, limit: u32) -> Result<Vec<LedgerRow>, libsql::Error> {
    let mut rows = conn
        .query(
            "SELECT created_at, entry_type, delta, ref FROM credit_ledger WHERE user_id = ?1 ORDER BY id DESC LIMIT ?2",
            (user.as_str(), limit),
        )
        .await?;
    let mut found = Vec::new();
    while let Some(row) = rows.next().await? {
        found.push(LedgerRow { at: row.get(0)?, entry_type: row.get(1)?, delta: row.get(2)?, reference: row.get(3)? });
    }
    Ok(found)
}

/// Closes grants whose time is up: their remaining credits leave the balance, with an `expire`
/// row each. At most `batch` grants per call; returns how many were closed.
pub async fn expire_due(conn: &Connection, now: i64, batch: u32) -> Result<usize, libsql::Error> {
    let mut due = conn
        .query(
            "SELECT id, user_id, remaining FROM credit_grants
              WHERE remaining > 0 AND voided_at IS NULL AND expires_at IS NOT NULL AND expires_at <= ?1
              LIMIT ?2",
            (now, i64::from(batch)),
        )
        .await?;
    let mut grants = Vec::new();
    while let Some(row) = due.next().await? {
        grants.push((row.get::<i64>(0)?, row.get::<String>(1)?, row.get::<i64>(2)?));
    }
    drop(due);
    let mut closed = 0;
    for (id, user, seen) in grants {
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate).await?;
        // Guarded by what was seen: a debit in between leaves it for the next pass.
        let changed =
            tx.execute("UPDATE credit_grants SET remaining = 0 WHERE id = ?1 AND remaining = ?2", (id, seen)).await?;
        if changed == 0 {
            tx.rollback().await?;
            continue;
        }
        tx.execute(
            "INSERT INTO credit_ledger (user_id, entry_type, delta, grant_id, created_at) VALUES (?1, 'expire', ?2, ?3, ?4)",
            (user.as_str(), -seen, id, now),
        )
        .await?;
        tx.execute(
            "UPDATE credit_accounts SET balance = balance - ?2, updated_at = ?3 WHERE user_id = ?1",
            (user.as_str(), seen, now),
        )
        .await?;
        tx.commit().await?;
        closed += 1;
    }
    Ok(closed)
}

/// A user's grant, as the billing page shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GrantRow {
    pub source: String,
    pub amount: i64,
    pub remaining: i64,
    pub effective_at: i64,
    pub expires_at: Option<i64>,
}

/// Grants still in effect or to come, soonest to be spent first.
pub async fn live_grants(conn: &Connection, user: &UserId, now: i64) -> Result<Vec<GrantRow>, libsql::Error> {
    let mut rows = conn
        .query(
            "SELECT source, amount, remaining, effective_at, expires_at FROM credit_grants
              WHERE user_id = ?1 AND voided_at IS NULL AND remaining > 0 AND (expires_at IS NULL OR expires_at > ?2)
              ORDER BY priority, expires_at IS NULL, expires_at, id LIMIT 50",
            (user.as_str(), now),
        )
        .await?;
    let mut grants = Vec::new();
    while let Some(row) = rows.next().await? {
        grants.push(GrantRow {
            source: row.get(0)?,
            amount: row.get(1)?,
            remaining: row.get(2)?,
            effective_at: row.get(3)?,
            expires_at: row.get(4)?,
        });
    }
    Ok(grants)
}

/// Accounts whose books do not balance, one sentence each (research: stripe-billing §5.6).
pub async fn invariant_violations(conn: &Connection) -> Result<Vec<String>, libsql::Error> {
    let checks = [
        (
            "the balance is not the sum of its grants",
            "SELECT a.user_id FROM credit_accounts a
              WHERE a.balance <> (SELECT coalesce(sum(remaining), 0) FROM credit_grants g
                                   WHERE g.user_id = a.user_id AND g.voided_at IS NULL)",
        ),
        (
            "the balance is not the sum of its ledger",
            "SELECT a.user_id FROM credit_accounts a
              WHERE a.balance <> (SELECT coalesce(sum(delta), 0) FROM credit_ledger l WHERE l.user_id = a.user_id)",
        ),
        (
            "a grant's spending is not explained by its ledger rows",
            "SELECT CAST(g.id AS TEXT) FROM credit_grants g
              WHERE g.amount - g.remaining <> (SELECT coalesce(-sum(delta), 0) FROM credit_ledger l
                                                WHERE l.grant_id = g.id AND l.entry_type <> 'grant')",
        ),
        (
            "a model call was not debited what it took from grants",
            "SELECT CAST(u.id AS TEXT) FROM usage_events u
              WHERE u.from_grants <> (SELECT coalesce(-sum(delta), 0) FROM credit_ledger l WHERE l.usage_event_id = u.id)
                 OR u.from_grants + u.shortfall <> u.credits",
        ),
    ];
    let mut found = Vec::new();
    for (what, sql) in checks {
        let mut rows = conn.query(sql, ()).await?;
        while let Some(row) = rows.next().await? {
            found.push(format!("{}: {what}", row.get::<String>(0)?));
        }
    }
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::db::migrated_temp_db as db;

    async fn user(db: &Db) -> UserId {
        let user = UserId::generate();
        db.conn().unwrap().execute("INSERT INTO users (id, created_at) VALUES (?1, 0)", [user.as_str()]).await.unwrap();
        user
    }

    fn grant_of(source_ref: &str, amount: u64, priority: u8, expires_at: Option<i64>) -> NewGrant<'_> {
        NewGrant { source: GrantSource::Adjustment, source_ref, amount, priority, effective_at: 0, expires_at }
    }

    fn call<'a>(user: &'a UserId, key: &'a str, at: i64) -> NewUsageEvent<'a> {
        NewUsageEvent {
            user_id: user,
            idempotency_key: key,
            api: "openai",
            model: "m",
            input_tokens: 10,
            output_tokens: 5,
            upstream_status: 200,
            complete: true,
            created_at: at,
        }
    }

    #[tokio::test]
    async fn grants_once_and_spends_the_soonest_lost_credits_first() {
        let (_dir, db) = db().await;
        let conn = db.conn().unwrap();
        let u = user(&db).await;
        assert!(grant(&conn, &u, &grant_of("pack:1", 100, 50, None), 10).await.unwrap());
        assert!(!grant(&conn, &u, &grant_of("pack:1", 100, 50, None), 10).await.unwrap(), "once per ref");
        assert!(grant(&conn, &u, &grant_of("allowance:1", 30, 20, Some(1_000)), 10).await.unwrap());
        assert!(grant(&conn, &u, &grant_of("promo:1", 5, 20, Some(500)), 10).await.unwrap());
        assert_eq!(spendable(&conn, &u, 20, 0).await.unwrap().balance, 135);

        let debit = record_and_debit(&conn, &call(&u, "a", 20), 40).await.unwrap().unwrap();
        assert_eq!(debit, Debit { credits: 40, from_grants: 40, shortfall: 0 });
        let left: Vec<(String, i64)> =
            live_grants(&conn, &u, 20).await.unwrap().into_iter().map(|g| (g.source, g.remaining)).collect();
        // The promo (same priority, expiring sooner) and the allowance went first; the pack pays the rest.
        assert_eq!(left, vec![("adjustment".to_string(), 95)]);
        assert_eq!(record_and_debit(&conn, &call(&u, "a", 21), 40).await.unwrap(), None, "a key is charged once");
        assert_eq!(spendable(&conn, &u, 21, 0).await.unwrap().balance, 95);

        let short = record_and_debit(&conn, &call(&u, "b", 22), 120).await.unwrap().unwrap();
        assert_eq!(short, Debit { credits: 120, from_grants: 95, shortfall: 25 });
        let after = spendable(&conn, &u, 22, 0).await.unwrap();
        assert_eq!((after.balance, after.spent_this_month), (0, 160));
        assert!(invariant_violations(&conn).await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn expired_grants_leave_the_balance_once_and_budgets_cap_spending() {
        let (_dir, db) = db().await;
        let conn = db.conn().unwrap();
        let u = user(&db).await;
        grant(&conn, &u, &grant_of("allowance:2", 50, 20, Some(100)), 0).await.unwrap();
        grant(&conn, &u, &grant_of("pack:2", 10, 50, None), 0).await.unwrap();
        record_and_debit(&conn, &call(&u, "c", 50), 20).await.unwrap();
        assert_eq!(spendable(&conn, &u, 150, 0).await.unwrap().balance, 10, "an expired grant is not spendable");
        assert_eq!(expire_due(&conn, 150, 10).await.unwrap(), 1);
        assert_eq!(expire_due(&conn, 150, 10).await.unwrap(), 0, "closed once");
        assert!(invariant_violations(&conn).await.unwrap().is_empty());

        set_monthly_budget(&conn, &u, Some(20), 150).await.unwrap();
        let capped = spendable(&conn, &u, 150, 0).await.unwrap();
        assert!(capped.budget_reached(), "{capped:?}");
        assert!(!spendable(&conn, &u, 150, 60).await.unwrap().budget_reached(), "a new month starts afresh");
    }

    #[tokio::test]
    async fn a_corrupted_ledger_is_reported() {
        let (_dir, db) = db().await;
        let conn = db.conn().unwrap();
        let u = user(&db).await;
        grant(&conn, &u, &grant_of("pack:3", 10, 50, None), 0).await.unwrap();
        conn.execute("UPDATE credit_accounts SET balance = 9", ()).await.unwrap();
        let found = invariant_violations(&conn).await.unwrap();
        assert_eq!(found.len(), 2, "{found:?}");
        assert!(found[0].contains("not the sum of its grants"), "{found:?}");
    }

    /// 32 debitors at once, each key sent by two of them: every key is charged once, no balance
    /// goes below zero, and the books balance.
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn concurrent_debitors_with_colliding_keys_charge_each_key_once() {
        let (_dir, db) = db().await;
        let users = [user(&db).await, user(&db).await];
        for (n, u) in users.iter().enumerate() {
            let conn = db.conn().unwrap();
            grant(&conn, u, &grant_of(&format!("pack:c{n}"), 500, 50, None), 0).await.unwrap();
            grant(&conn, u, &grant_of(&format!("promo:c{n}"), 50, 10, Some(10_000)), 0).await.unwrap();
        }
        let mut debitors = tokio::task::JoinSet::new();
        for d in 0..32u32 {
            let (db, u) = (db.clone(), users[d as usize % 2].clone());
            debitors.spawn(async move {
                let mut charged = 0;
                for i in 0..20u32 {
                    // Debitors d and d+2 send the same keys for the same user.
                    let key = format!("k{}-{i}", d % 16);
                    let conn = db.conn().unwrap();
                    if let Some(debit) = record_and_debit(&conn, &call(&u, &key, 1), 7).await.unwrap() {
                        charged += debit.from_grants;
                    }
                }
                charged
            });
        }
        let mut charged = 0;
        while let Some(result) = debitors.join_next().await {
            charged += result.unwrap();
        }
        let conn = db.conn().unwrap();
        let events = crate::db::first_row(conn.query("SELECT count(*) FROM usage_events", ()).await.unwrap(), |r| {
            r.get::<i64>(0)
        })
        .await
        .unwrap();
        assert_eq!(events, Some(16 * 20), "each of 16 keys × 20 once");
        // 160 calls per user at 7 credits = 1,120 wanted, 550 available: all of it spent, none twice.
        assert_eq!(charged, 1_100);
        for u in &users {
            assert_eq!(spendable(&conn, u, 1, 0).await.unwrap().balance, 0);
        }
        assert!(invariant_violations(&conn).await.unwrap().is_empty());
    }
}
