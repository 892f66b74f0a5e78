//! Deleting an account: what goes, what stays, and the machines left to destroy.
//!
//! Deleted in one transaction: sessions, API tokens, chats and their cached messages, the
//! machine's lifecycle history, the email and password hash. Kept: a tombstone `users` row (id,
//! `clerk_user_id`, `created_at`, `deleted_at`) and the user's `usage_events`. The usage rows are
//! the record of model calls the operator paid for, which accounting and billing reconcile
//! against; they hold no message text. The tombstone keeps their foreign key meaningful and
//! keeps a deleted Clerk user's still-valid session tokens refused. The email is freed, so it may
//! sign up again.
//!
//! The `machines` row stays, marked `destroying`, until the running server has destroyed the
//! agent and its data ([`deleted_users_with_machines`] finds such rows, whoever deleted the
//! account), and then [`forget_machine`] removes it.

use libsql::{Connection, TransactionBehavior};

use crate::domain::{UserId, now_secs};

/// How many machines of deleted users one sweep takes on; the rest wait for the next.
pub const SWEEP_BATCH: u32 = 16;

/// Deletes the account in its own transaction. False if there was no such (live) account.
pub async fn delete_account(conn: &Connection, user: &UserId) -> Result<bool, libsql::Error> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate).await?;
    let deleted = delete_account_in(&tx, user).await?;
    tx.commit().await?;
    Ok(deleted)
}

/// Deletes the account inside the caller's transaction (a webhook records its delivery in the
/// same one).
pub async fn delete_account_in(tx: &Connection, user: &UserId) -> Result<bool, libsql::Error> {
    let id = user.as_str();
    let tombstoned = tx
        .execute(
            "UPDATE users SET deleted_at = ?2, email = NULL, password_hash = NULL WHERE id = ?1 AND deleted_at IS NULL",
            (id, now_secs()),
        )
        .await?;
    for table in [
        "sessions",
        "api_tokens",
        "chat_messages",
        "chat_run_ends",
        "chat_sessions",
        "machine_events",
        "integrations",
        "user_llm_keys",
        "password_resets",
    ] {
        tx.execute(&format!("DELETE FROM {table} WHERE user_id = ?1"), [id]).await?;
    }
    tx.execute(
        "UPDATE machines SET state = 'destroying', stage = 'destroying', detail = 'the account was deleted', \
         updated_at = ?2 WHERE user_id = ?1",
        (id, now_secs()),
    )
    .await?;
    Ok(tombstoned > 0)
}

/// Users with a `machines` row whose account is gone: deleted here, by `roost admin` or by an
/// older version that removed the `users` row itself.
pub async fn deleted_users_with_machines(conn: &Connection) -> Result<Vec<UserId>, libsql::Error> {
    let rows = conn
        .query(
            "SELECT m.user_id FROM machines m LEFT JOIN users u ON u.id = m.user_id \
             WHERE u.id IS NULL OR u.deleted_at IS NOT NULL LIMIT ?1",
            [SWEEP_BATCH],
        )
        .await?;
    super::user_ids(rows).await
}

/// After the agent is destroyed: its row goes, and so does any chat cache a run that finished
/// during the deletion wrote back (and any lifecycle event written meanwhile).
pub async fn forget_machine(conn: &Connection, user: &UserId) -> Result<(), libsql::Error> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate).await?;
    // Only for an account that is gone: never a live user's chats.
    let gone = "NOT EXISTS (SELECT 1 FROM users WHERE id = ?1 AND deleted_at IS NULL)";
    for table in ["machines", "machine_leases", "machine_events", "chat_messages", "chat_run_ends", "chat_sessions"] {
        tx.execute(&format!("DELETE FROM {table} WHERE user_id = ?1 AND {gone}"), [user.as_str()]).await?;
    }
    tx.commit().await
}
