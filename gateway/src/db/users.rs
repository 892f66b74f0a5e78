use libsql::{Connection, TransactionBehavior};
use serde::Serialize;

use super::{first_row, is_unique_violation};
use crate::domain::{Email, UserId, now_secs};

#[derive(Debug, Clone, Serialize)]
pub struct User {
    pub id: UserId,
    pub email: Option<String>,
    pub created_at: i64,
    pub is_admin: bool,
}

pub struct Credentials {
    pub user: User,
    pub password_hash: Option<String>,
    pub suspended_at: Option<i64>,
}

const COLUMNS: &str = "id, email, created_at, password_hash, is_admin, suspended_at";

fn credentials_from_row(row: &libsql::Row) -> Result<Credentials, libsql::Error> {
    let id: String = row.get(0)?;
    Ok(Credentials {
        user: User {
            id: UserId::parse(&id).map_err(|_| libsql::Error::InvalidColumnType)?,
            email: row.get(1)?,
            created_at: row.get(2)?,
            is_admin: row.get::<i64>(4)? != 0,
        },
        password_hash: row.get(3)?,
        suspended_at: row.get(5)?,
    })
}

pub enum CreateError {
    EmailTaken,
    /// The invite code is unknown, used up, expired or revoked.
    InviteInvalid,
    /// The server serves one account only, and it exists.
    AccountLimit,
    Db(libsql::Error),
}

/// Whether a new account may join existing ones (`Sole`: only when there is none yet, checked
/// in the same statement as the insert).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Accounts {
    Many,
    Sole,
}

/// A condition true unless parameter `?n` is set and an account exists.
fn no_other_account(n: u8) -> String {
    format!("(?{n} = 0 OR NOT EXISTS (SELECT 1 FROM users WHERE deleted_at IS NULL))")
}

/// Who may create an account now: anyone, holders of an invite code (its hash), or nobody.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission<'a> {
    Open,
    Invite(Option<&'a str>),
    Closed,
}

/// Whether the row about to be inserted is the first account ever: it gets the admin role.
const FIRST_ACCOUNT: &str = "NOT EXISTS (SELECT 1 FROM users)";

/// Creates a local account. With an invite, one use of the code is taken in the same
/// transaction as the insert, so a refused insert (a taken email) uses nothing. Without one it
/// is a single statement (the bench seeder runs it inside a transaction of its own).
pub async fn create_local(
    conn: &Connection,
    email: &Email,
    password_hash: &str,
    accounts: Accounts,
    invite: Option<&str>,
) -> Result<User, CreateError> {
    let now = now_secs();
    let Some(code_hash) = invite else {
        return insert_local(conn, email, password_hash, accounts, now).await;
    };
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate).await.map_err(CreateError::Db)?;
    if !super::invites::take_one(&tx, code_hash, now).await.map_err(CreateError::Db)? {
        tx.rollback().await.map_err(CreateError::Db)?;
        return Err(CreateError::InviteInvalid);
    }
    match insert_local(&tx, email, password_hash, accounts, now).await {
        Ok(user) => {
            tx.commit().await.map_err(CreateError::Db)?;
            Ok(user)
        }
        Err(e) => {
            tx.rollback().await.map_err(CreateError::Db)?;
            Err(e)
        }
    }
}

async fn insert_local(
    conn: &Connection,
    email: &Email,
    password_hash: &str,
    accounts: Accounts,
    now: i64,
) -> Result<User, CreateError> {
    let id = UserId::generate();
    let sql = format!(
        "INSERT INTO users (id, email, password_hash, created_at, is_admin) SELECT ?1, ?2, ?3, ?4, {FIRST_ACCOUNT} \
         WHERE {} RETURNING is_admin",
        no_other_account(5)
    );
    let taken = |e: libsql::Error| if is_unique_violation(&e) { CreateError::EmailTaken } else { CreateError::Db(e) };
    let inserted = conn
        .query(&sql, (id.as_str(), email.as_str(), password_hash, now, accounts == Accounts::Sole))
        .await
        .map_err(taken)?;
    let is_admin = first_row(inserted, |row| row.get::<i64>(0)).await.map_err(taken)?;
    let Some(is_admin) = is_admin else {
        return Err(CreateError::AccountLimit);
    };
    Ok(User { id, email: Some(email.as_str().to_string()), created_at: now, is_admin: is_admin != 0 })
}

pub async fn count(conn: &Connection) -> Result<i64, libsql::Error> {
    let counted = first_row(conn.query("SELECT count(*) FROM users WHERE deleted_at IS NULL", ()).await?, |row| {
        row.get::<i64>(0)
    })
    .await?;
    Ok(counted.unwrap_or(0))
}

pub async fn find_by_email(conn: &Connection, email: &Email) -> Result<Option<Credentials>, libsql::Error> {
    let sql = format!("SELECT {COLUMNS} FROM users WHERE email = ?1 AND deleted_at IS NULL");
    first_row(conn.query(&sql, [email.as_str()]).await?, credentials_from_row).await
}

pub async fn find_by_id(conn: &Connection, id: &UserId) -> Result<Option<User>, libsql::Error> {
    let sql = format!("SELECT {COLUMNS} FROM users WHERE id = ?1 AND deleted_at IS NULL");
    Ok(first_row(conn.query(&sql, [id.as_str()]).await?, credentials_from_row).await?.map(|c| c.user))
}

pub enum ClerkUser {
    Found(User),
    /// That Clerk user was deleted.
    Deleted,
    /// Known, and suspended by an admin.
    Suspended,
    /// New, and the sign-up policy does not let it in.
    Refused(Refusal),
    /// New to Roost, on a server that serves one account only, which exists.
    AccountLimit,
}

/// The user for a Clerk `sub`, created on first sight (unless `Sole` and another account exists).
/// A known user costs one read: this runs on every Clerk-authenticated request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    Closed,
    InviteRequired,
    InviteInvalid,
}

pub async fn find_or_create_clerk(
    conn: &Connection,
    clerk_user_id: &str,
    accounts: Accounts,
    admission: Admission<'_>,
) -> Result<ClerkUser, libsql::Error> {
    if let Some(known) = find_clerk(conn, clerk_user_id).await? {
        return Ok(known);
    }
    let invite = match admission {
        Admission::Open => None,
        Admission::Closed => return Ok(ClerkUser::Refused(Refusal::Closed)),
        Admission::Invite(None) => return Ok(ClerkUser::Refused(Refusal::InviteRequired)),
        Admission::Invite(Some(hash)) => Some(hash),
    };
    let now = now_secs();
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate).await?;
    // Another request may have created this user meanwhile: then no invite is taken.
    if find_clerk(&tx, clerk_user_id).await?.is_none() {
        if let Some(hash) = invite
            && !super::invites::take_one(&tx, hash, now).await?
        {
            tx.rollback().await?;
            return Ok(ClerkUser::Refused(Refusal::InviteInvalid));
        }
        let sql = format!(
            "INSERT INTO users (id, clerk_user_id, created_at, is_admin) SELECT ?1, ?2, ?3, {FIRST_ACCOUNT} WHERE {}",
            no_other_account(4)
        );
        tx.execute(&sql, (UserId::generate().as_str(), clerk_user_id, now, accounts == Accounts::Sole)).await?;
    }
    tx.commit().await?;
    Ok(find_clerk(conn, clerk_user_id).await?.unwrap_or(ClerkUser::AccountLimit))
}

async fn find_clerk(conn: &Connection, clerk_user_id: &str) -> Result<Option<ClerkUser>, libsql::Error> {
    let sql = format!("SELECT {COLUMNS}, deleted_at FROM users WHERE clerk_user_id = ?1");
    let found = first_row(conn.query(&sql, [clerk_user_id]).await?, |row| {
        Ok((credentials_from_row(row)?, row.get::<Option<i64>>(6)?))
    })
    .await?;
    Ok(found.map(|(credentials, deleted_at)| match (deleted_at, credentials.suspended_at) {
        (Some(_), _) => ClerkUser::Deleted,
        (None, Some(_)) => ClerkUser::Suspended,
        (None, None) => ClerkUser::Found(credentials.user),
    }))
}

/// The live account of a Clerk user, if there is one.
pub async fn find_live_clerk(conn: &Connection, clerk_user_id: &str) -> Result<Option<UserId>, libsql::Error> {
    let sql = "SELECT id FROM users WHERE clerk_user_id = ?1 AND deleted_at IS NULL";
    let found = first_row(conn.query(sql, [clerk_user_id]).await?, |row| row.get::<String>(0)).await?;
    Ok(found.and_then(|id| UserId::parse(&id).ok()))
}

/// A live account with its password hash (none for Clerk users).
pub async fn credentials_by_id(conn: &Connection, id: &UserId) -> Result<Option<Credentials>, libsql::Error> {
    let sql = format!("SELECT {COLUMNS} FROM users WHERE id = ?1 AND deleted_at IS NULL");
    first_row(conn.query(&sql, [id.as_str()]).await?, credentials_from_row).await
}

/// Sets a live local account's password hash. False if there is no such account.
pub async fn set_password_hash(conn: &Connection, id: &UserId, hash: &str) -> Result<bool, libsql::Error> {
    let changed = conn
        .execute(
            "UPDATE users SET password_hash = ?2 WHERE id = ?1 AND deleted_at IS NULL AND password_hash IS NOT NULL",
            (id.as_str(), hash),
        )
        .await?;
    Ok(changed > 0)
}

/// Gives or takes the admin role. False if there is no such live account.
pub async fn set_admin(conn: &Connection, id: &UserId, admin: bool) -> Result<bool, libsql::Error> {
    let changed = conn
        .execute("UPDATE users SET is_admin = ?2 WHERE id = ?1 AND deleted_at IS NULL", (id.as_str(), i64::from(admin)))
        .await?;
    Ok(changed > 0)
}

/// Suspends (`Some(now)`) or unsuspends (`None`) a live account. False if nothing changed.
pub async fn set_suspended(conn: &Connection, id: &UserId, at: Option<i64>) -> Result<bool, libsql::Error> {
    let changed = conn
        .execute(
            "UPDATE users SET suspended_at = ?2 WHERE id = ?1 AND deleted_at IS NULL \
             AND (suspended_at IS NULL) = (?2 IS NOT NULL)",
            (id.as_str(), at),
        )
        .await?;
    Ok(changed > 0)
}

/// Whether the live account has the admin role and is not suspended.
pub async fn is_active_admin(conn: &Connection, id: &UserId) -> Result<bool, libsql::Error> {
    let rows = conn
        .query(
            "SELECT 1 FROM users WHERE id = ?1 AND deleted_at IS NULL AND suspended_at IS NULL AND is_admin = 1",
            [id.as_str()],
        )
        .await?;
    Ok(first_row(rows, |_| Ok(())).await?.is_some())
}

/// Suspended live accounts, at most `limit` (their agents are kept stopped).
pub async fn suspended(conn: &Connection, limit: u32) -> Result<Vec<UserId>, libsql::Error> {
    let rows = conn
        .query("SELECT id FROM users WHERE suspended_at IS NOT NULL AND deleted_at IS NULL LIMIT ?1", [limit])
        .await?;
    super::user_ids(rows).await
}

/// Changes a live local account's email. False if there is no such account.
pub async fn set_email(conn: &Connection, id: &UserId, email: &Email) -> Result<bool, SetEmailError> {
    let changed = conn
        .execute(
            "UPDATE users SET email = ?2 WHERE id = ?1 AND deleted_at IS NULL AND password_hash IS NOT NULL",
            (id.as_str(), email.as_str()),
        )
        .await
        .map_err(|e| if is_unique_violation(&e) { SetEmailError::Taken } else { SetEmailError::Db(e) })?;
    Ok(changed > 0)
}

pub enum SetEmailError {
    Taken,
    Db(libsql::Error),
}

pub async fn is_suspended(conn: &Connection, id: &UserId) -> Result<bool, libsql::Error> {
    let rows = conn.query("SELECT 1 FROM users WHERE id = ?1 AND suspended_at IS NOT NULL", [id.as_str()]).await?;
    Ok(first_row(rows, |_| Ok(())).await?.is_some())
}
