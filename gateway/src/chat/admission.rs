//! Which chats a `chat.send` may reach: one that exists, or a new one within the chat cap,
//! created (and so listed) before the message reaches the agent.

use super::SessionKey;
use super::history::default_title;
use crate::db::Db;
use crate::db::chat_sessions::{self, Created, MAX_SESSIONS};
use crate::domain::UserId;

pub enum Admission {
    Admitted,
    Refused(String),
}

pub async fn admit(db: &Db, user: &UserId, raw_key: &str) -> Result<Admission, libsql::Error> {
    let Some(key) = SessionKey::from_agent(raw_key) else {
        return Ok(Admission::Refused("That is not a chat this Roost server knows.".into()));
    };
    if key.is_main() {
        return Ok(Admission::Admitted);
    }
    let conn = db.conn()?;
    if chat_sessions::find(&conn, user, &key).await?.is_some() {
        return Ok(Admission::Admitted);
    }
    Ok(match chat_sessions::create(&conn, user, &key, &default_title(&key)).await? {
        Created::Created | Created::Exists => Admission::Admitted,
        Created::AtLimit => Admission::Refused(format!(
            "You have {MAX_SESSIONS} chats, the most there can be. Delete one before starting another."
        )),
    })
}
