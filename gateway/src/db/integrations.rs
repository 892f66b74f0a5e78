//! `integrations`: the bots connected to each user's agent, with their token sealed.

use libsql::Connection;

use crate::domain::UserId;

pub struct Integration {
    pub channel: String,
    pub token_sealed: Vec<u8>,
    pub key_version: i64,
    pub bot_id: String,
    pub bot_name: String,
    pub bot_username: String,
    pub application_id: Option<String>,
    pub message_content: Option<bool>,
    pub dm_policy: String,
    pub token_file: String,
    pub owner_chat_id: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
}

const COLUMNS: &str = "channel, token_sealed, key_version, bot_id, bot_name, bot_username, application_id, \
                       message_content, dm_policy, token_file, owner_chat_id, created_at, updated_at";

fn from_row(row: &libsql::Row) -> Result<Integration, libsql::Error> {
    Ok(Integration {
        channel: row.get(0)?,
        token_sealed: row.get(1)?,
        key_version: row.get(2)?,
        bot_id: row.get(3)?,
        bot_name: row.get(4)?,
        bot_username: row.get(5)?,
        application_id: row.get(6)?,
        message_content: row.get::<Option<i64>>(7)?.map(|v| v != 0),
        dm_policy: row.get(8)?,
        token_file: row.get(9)?,
        owner_chat_id: row.get(10)?,
        created_at: row.get(11)?,
        updated_at: row.get(12)?,
    })
}

pub async fn list(conn: &Connection, user: &UserId) -> Result<Vec<Integration>, libsql::Error> {
    let mut rows = conn
        .query(&format!("SELECT {COLUMNS} FROM integrations WHERE user_id = ?1 ORDER BY channel"), [user.as_str()])
        .await?;
    let mut out = Vec::new();
    while let Some(row) = rows.next().await? {
        out.push(from_row(&row)?);
    }
    Ok(out)
}

pub async fn find(conn: &Connection, user: &UserId, channel: &str) -> Result<Option<Integration>, libsql::Error> {
    let rows = conn
        .query(
            &format!("SELECT {COLUMNS} FROM integrations WHERE user_id = ?1 AND channel = ?2"),
            (user.as_str(), channel),
        )
        .await?;
    super::first_row(rows, from_row).await
}

/// The Roost user a bot is connected for, if any.
pub async fn owner_of_bot(conn: &Connection, channel: &str, bot_id: &str) -> Result<Option<String>, libsql::Error> {
    let rows =
        conn.query("SELECT user_id FROM integrations WHERE channel = ?1 AND bot_id = ?2", (channel, bot_id)).await?;
    super::first_row(rows, |row| row.get(0)).await
}

/// Inserts or replaces the user's bot on this channel. A bot another user holds is a unique
/// violation (see [`super::is_unique_violation`]).
pub async fn upsert(conn: &Connection, user: &UserId, i: &Integration) -> Result<(), libsql::Error> {
    conn.execute(
        &format!(
            "INSERT INTO integrations (user_id, {COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)
             ON CONFLICT (user_id, channel) DO UPDATE SET token_sealed = excluded.token_sealed,
               key_version = excluded.key_version, bot_id = excluded.bot_id, bot_name = excluded.bot_name,
               bot_username = excluded.bot_username, application_id = excluded.application_id,
               message_content = excluded.message_content, dm_policy = excluded.dm_policy,
               token_file = excluded.token_file,
               owner_chat_id = CASE WHEN integrations.bot_id = excluded.bot_id
                                    THEN integrations.owner_chat_id ELSE excluded.owner_chat_id END,
               updated_at = excluded.updated_at"
        ),
        libsql::params![
            user.as_str(),
            i.channel.as_str(),
            i.token_sealed.clone(),
            i.key_version,
            i.bot_id.as_str(),
            i.bot_name.as_str(),
            i.bot_username.as_str(),
            i.application_id.clone(),
            i.message_content.map(i64::from),
            i.dm_policy.as_str(),
            i.token_file.as_str(),
            i.owner_chat_id.clone(),
            i.created_at,
            i.updated_at,
        ],
    )
    .await?;
    Ok(())
}

pub async fn set_dm_policy(
    conn: &Connection,
    user: &UserId,
    channel: &str,
    policy: &str,
    now: i64,
) -> Result<bool, libsql::Error> {
    let n = conn
        .execute(
            "UPDATE integrations SET dm_policy = ?3, updated_at = ?4 WHERE user_id = ?1 AND channel = ?2",
            (user.as_str(), channel, policy, now),
        )
        .await?;
    Ok(n > 0)
}

/// Records the user's own chat with the bot, unless one is known already.
pub async fn set_owner_chat(conn: &Connection, user: &UserId, channel: &str, chat: &str) -> Result<(), libsql::Error> {
    conn.execute(
        "UPDATE integrations SET owner_chat_id = coalesce(owner_chat_id, ?3) WHERE user_id = ?1 AND channel = ?2",
        (user.as_str(), channel, chat),
    )
    .await?;
    Ok(())
}

pub async fn delete(conn: &Connection, user: &UserId, channel: &str) -> Result<bool, libsql::Error> {
    let n =
        conn.execute("DELETE FROM integrations WHERE user_id = ?1 AND channel = ?2", (user.as_str(), channel)).await?;
    Ok(n > 0)
}

/// Users with any bot connected (their agents stay on).
pub async fn users_with_channels(conn: &Connection) -> Result<Vec<UserId>, libsql::Error> {
    super::user_ids(conn.query("SELECT DISTINCT user_id FROM integrations", ()).await?).await
}
