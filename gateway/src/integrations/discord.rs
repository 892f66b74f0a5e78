//! Discord: the token's shape, `/users/@me` (it must be a bot), `/applications/@me` (the
//! invite link's client id, and whether the Message Content intent is on), the invite URL, and
//! a DM for the test message.

use base64::Engine;
use serde_json::{Value, json};

use super::Integrations;
use super::telegram::{CallError, ShapeError};
use crate::secret::SecretString;

const MAX_TOKEN_CHARS: usize = 100;
const MESSAGE_CONTENT: u64 = 1 << 18;
const MESSAGE_CONTENT_LIMITED: u64 = 1 << 19;
/// View Channels, Send Messages, Embed Links, Attach Files, Read Message History, Add
/// Reactions, Send Messages in Threads (research B2.2 item 4).
pub const INVITE_PERMISSIONS: u64 = (1 << 10) | (1 << 11) | (1 << 14) | (1 << 15) | (1 << 16) | (1 << 6) | (1 << 38);

#[derive(Debug, Clone)]
pub struct DiscordToken {
    token: SecretString,
    user_id: String,
}

impl DiscordToken {
    /// `^[A-Za-z0-9_-]{18,30}\.[A-Za-z0-9_-]{6}\.[A-Za-z0-9_-]{25,45}$`, whose first part is
    /// the base64 of the bot's user id.
    pub fn parse(raw: &str) -> Result<Self, ShapeError> {
        let raw = raw.trim();
        let raw = raw.strip_prefix("Bot ").unwrap_or(raw);
        if raw.is_empty() {
            return Err(ShapeError::Empty);
        }
        if raw.len() > MAX_TOKEN_CHARS {
            return Err(ShapeError::TooLong);
        }
        let part = |p: &str, len: std::ops::RangeInclusive<usize>| {
            len.contains(&p.len()) && p.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
        };
        let parts: Vec<&str> = raw.split('.').collect();
        let [first, second, third] = parts[..] else { return Err(ShapeError::Malformed) };
        if !(part(first, 18..=30) && part(second, 6..=6) && part(third, 25..=45)) {
            return Err(ShapeError::Malformed);
        }
        let padded = first.trim_end_matches('=');
        let user_id = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(padded)
            .or_else(|_| base64::engine::general_purpose::STANDARD_NO_PAD.decode(padded))
            .ok()
            .and_then(|b| String::from_utf8(b).ok())
            .filter(|id| !id.is_empty() && id.bytes().all(|b| b.is_ascii_digit()))
            .ok_or(ShapeError::Malformed)?;
        Ok(Self { token: raw.parse().expect("infallible"), user_id })
    }

    pub fn expose(&self) -> &str {
        self.token.expose()
    }
}

/// A hint for a string that is some other Discord credential.
pub fn misplaced_credential(raw: &str) -> Option<&'static str> {
    let raw = raw.trim();
    if raw.len() == 32 && raw.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-') {
        return Some("This looks like the application's client secret, not the bot token.");
    }
    if raw.len() == 64 && raw.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Some("This looks like the application's public key, not the bot token.");
    }
    None
}

#[derive(Debug, Clone)]
pub struct DiscordBot {
    pub id: String,
    pub username: String,
    pub application_id: String,
    pub message_content: bool,
}

#[derive(Debug)]
pub enum CheckError {
    Call(CallError),
    /// A user account's token: a self-bot, against Discord's terms.
    UserToken,
}

impl From<CallError> for CheckError {
    fn from(e: CallError) -> Self {
        Self::Call(e)
    }
}

async fn get(api: &Integrations, path: &str, authorization: &str) -> Result<Value, CallError> {
    let res = api
        .http
        .get(format!("{}{path}", api.discord_api_base))
        .header("authorization", authorization)
        .send()
        .await
        .map_err(|e| {
            tracing::info!(path, error = %e.without_url(), "the Discord API did not answer");
            CallError::Unreachable
        })?;
    answer(res).await
}

async fn answer(res: reqwest::Response) -> Result<Value, CallError> {
    let status = res.status().as_u16();
    let retry_header =
        res.headers().get("retry-after").and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<f64>().ok());
    let body: Value = res.json().await.unwrap_or(Value::Null);
    match status {
        200..=299 => Ok(body),
        401 | 403 => Err(CallError::InvalidToken),
        429 => {
            let secs = body["retry_after"].as_f64().or(retry_header).unwrap_or(30.0);
            Err(CallError::RateLimited(secs.ceil().max(1.0) as u64))
        }
        500.. => Err(CallError::Unreachable),
        _ => Err(CallError::Refused(super::scrub(body["message"].as_str().unwrap_or("refused")))),
    }
}

/// Checks the token: a bot user whose id the token names, and its application.
pub async fn check(api: &Integrations, token: &DiscordToken) -> Result<DiscordBot, CheckError> {
    let bot_auth = format!("Bot {}", token.expose());
    let me = match get(api, "/users/@me", &bot_auth).await {
        Ok(me) => me,
        Err(CallError::InvalidToken) => {
            // Discord refuses a user's token under `Bot`; asked bare, it says whose it is.
            if let Ok(user) = get(api, "/users/@me", token.expose()).await
                && user["bot"] != true
            {
                return Err(CheckError::UserToken);
            }
            return Err(CallError::InvalidToken.into());
        }
        Err(e) => return Err(e.into()),
    };
    if me["bot"] != true {
        return Err(CheckError::UserToken);
    }
    let id = me["id"].as_str().unwrap_or_default().to_string();
    if id != token.user_id {
        return Err(CallError::InvalidToken.into());
    }
    let app = get(api, "/applications/@me", &bot_auth).await?;
    let flags = app["flags"].as_u64().unwrap_or(0);
    Ok(DiscordBot {
        id,
        username: me["username"].as_str().unwrap_or_default().chars().take(64).collect(),
        application_id: app["id"].as_str().unwrap_or_default().chars().take(32).collect(),
        message_content: flags & (MESSAGE_CONTENT | MESSAGE_CONTENT_LIMITED) != 0,
    })
}

/// The link that adds the bot to a server, with the permissions OpenClaw needs.
pub fn invite_url(application_id: &str) -> String {
    format!(
        "https://discord.com/oauth2/authorize?client_id={application_id}&scope=bot+applications.commands&permissions={INVITE_PERMISSIONS}"
    )
}

/// DMs `text` to user `recipient` as the bot.
pub async fn send_dm(api: &Integrations, token: &DiscordToken, recipient: &str, text: &str) -> Result<(), CallError> {
    let auth = format!("Bot {}", token.expose());
    let post = |path: String, body: Value| {
        api.http
            .post(format!("{}{path}", api.discord_api_base))
            .header("authorization", auth.clone())
            .json(&body)
            .send()
    };
    let unreachable = |e: reqwest::Error| {
        tracing::info!(error = %e.without_url(), "the Discord API did not answer");
        CallError::Unreachable
    };
    let channel =
        answer(post("/users/@me/channels".into(), json!({ "recipient_id": recipient })).await.map_err(unreachable)?)
            .await?;
    let channel_id = channel["id"].as_str().filter(|id| id.bytes().all(|b| b.is_ascii_digit())).unwrap_or_default();
    if channel_id.is_empty() {
        return Err(CallError::Refused("Discord gave no DM channel".into()));
    }
    answer(post(format!("/channels/{channel_id}/messages"), json!({ "content": text })).await.map_err(unreachable)?)
        .await
        .map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_docs_example_names_its_user_and_other_credentials_get_hints() {
        let t = DiscordToken::parse("MTk4NjIyNDgzNDcxOTI1MjQ4.Cl2FMQ.ZnCjm1XVW7vRze4b7Cq4se7kKWs").unwrap();
        assert_eq!(t.user_id, "198622483471925248");
        assert!(!format!("{t:?}").contains("ZnCjm"));
        assert!(DiscordToken::parse("MTk4NjIyNDgzNDcxOTI1MjQ4.Cl2FMQ.ZnCjm1XVW7vRze4b7Cq4se7kKWs/x").is_err());
        assert!(DiscordToken::parse("MTk4NjIyNDgzNDcxOTI1MjQ4.Cl2FMQ").is_err());
        assert_eq!(misplaced_credential(&"a".repeat(32)).map(|h| h.contains("client secret")), Some(true));
        assert_eq!(misplaced_credential(&"ab".repeat(32)).map(|h| h.contains("public key")), Some(true));
        assert_eq!(INVITE_PERMISSIONS, 274_878_024_768);
        assert!(invite_url("42").contains("client_id=42&scope=bot+applications.commands&permissions=274878024768"));
    }
}
