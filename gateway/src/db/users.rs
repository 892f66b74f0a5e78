use libsql::Connection;
use serde::Serialize;

use super::{first_row, is_unique_violation};
use crate::domain::{Email, UserId, now_secs};

#[derive(Debug, Clone, Serialize)]
pub struct User {
    pub id: UserId,
    pub email: Option<String>,
    pub created_at: i64,
}

pub struct Credentials {
    pub user: User,
    pub password_hash: Option<String>,
}

const COLUMNS: &str = "id, email, created_at, password_hash";

fn credentials_from_row(row: &libsql::Row) -> Result<Credentials, libsql::Error> {
    let id: String = row.get(0)?;
    Ok(Credentials {
        user: User {
            id: UserId::parse(&id).map_err(|_| libsql::Error::InvalidColumnType)?,
            email: row.get(1)?,
            created_at: row.get(2)?,
        },
        password_hash: row.get(3)?,
    })
}

pub enum CreateError {
    EmailTaken,
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

pub async fn create_local(
    conn: &Connection,
    email: &Email,
    password_hash: &str,
    accounts: Accounts,
) -> Result<User, CreateError> {
    let user = User { id: UserId::generate(), email: Some(email.as_str().to_string()), created_at: now_secs() };
    let sql = format!(
        "INSERT INTO users (id, email, password_hash, created_at) SELECT ?1, ?2, ?3, ?4 WHERE {}",
        no_other_account(5)
    );
    let inserted = conn
        .execute(&sql, (user.id.as_str(), email.as_str(), password_hash, user.created_at, accounts == Accounts::Sole))
        .await
        .map_err(|e| if is_unique_violation(&e) { CreateError::EmailTaken } else { CreateError::Db(e) })?;
    if inserted == 0 {
        return Err(CreateError::AccountLimit);
    }
    Ok(user)
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
    /// New to Roost, on a server that serves one account only, which exists.
    AccountLimit,
}

/// The user for a Clerk `sub`, created on first sight (unless `Sole` and another account exists).
/// A known user costs one read: this runs on every Clerk-authenticated request.
pub async fn find_or_create_clerk(
    conn: &Connection,
    clerk_user_id: &str,
    accounts: Accounts,
) -> Result<ClerkUser, libsql::Error> {
    if let Some(known) = find_clerk(conn, clerk_user_id).await? {
        return Ok(known);
    }
    let id = UserId::generate();
    let sql = format!(
        "INSERT INTO users (id, clerk_user_id, created_at) SELECT ?1, ?2, ?3 WHERE {} \
         ON CONFLICT (clerk_user_id) DO NOTHING",
        no_other_account(4)
    );
    conn.execute(&sql, (id.as_str(), clerk_user_id, now_secs(), accounts == Accounts::Sole)).await?;
    Ok(find_clerk(conn, clerk_user_id).await?.unwrap_or(ClerkUser::AccountLimit))
}

async fn find_clerk(conn: &Connection, clerk_user_id: &str) -> Result<Option<ClerkUser>, libsql::Error> {
    let sql = "SELECT id, email, created_at, password_hash, deleted_at FROM users WHERE clerk_user_id = ?1";
    let found = first_row(conn.query(sql, [clerk_user_id]).await?, |row| {
        Ok((credentials_from_row(row)?.user, row.get::<Option<i64>>(4)?))
    })
    .await?;
    Ok(found.map(|(user, deleted_at)| if deleted_at.is_some() { ClerkUser::Deleted } else { ClerkUser::Found(user) }))
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

pub async fn list(conn: &Connection) -> Result<Vec<User>, libsql::Error> {
    let sql = format!("SELECT {COLUMNS} FROM users WHERE deleted_at IS NULL ORDER BY created_at");
    let mut rows = conn.query(&sql, ()).await?;
    let mut users = Vec::new();
    while let Some(row) = rows.next().await? {
        users.push(credentials_from_row(&row)?.user);
    }
    Ok(users)
}
