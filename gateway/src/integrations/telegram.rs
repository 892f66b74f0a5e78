//! Telegram: the token's shape (it goes into a URL path), `getMe`, and `sendMessage` for the
//! test message. Errors are branched on the HTTP status and `ok`, as the Bot API advises.

use serde_json::{Value, json};

use super::Integrations;
use crate::secret::SecretString;

const MAX_TOKEN_CHARS: usize = 100;

/// A token that has the Bot API's shape: `<bot id>:<secret>`, nothing that could leave the
/// `/bot<token>/` path segment.
#[derive(Debug, Clone)]
pub struct TelegramToken {
    token: SecretString,
    bot_id: String,
}

#[derive(Debug, PartialEq, Eq)]
pub enum ShapeError {
    Empty,
    TooLong,
    Malformed,
}

impl TelegramToken {
    /// Trims whitespace and an accidental `bot` prefix, then requires
    /// `^[0-9]{5,16}:[A-Za-z0-9_-]{30,64}$` (research B2.1: lenient, `getMe` decides).
    pub fn parse(raw: &str) -> Result<Self, ShapeError> {
        let raw = raw.trim();
        if raw.is_empty() {
            return Err(ShapeError::Empty);
        }
        if raw.len() > MAX_TOKEN_CHARS {
            return Err(ShapeError::TooLong);
        }
        let fits = |t: &str| {
            t.split_once(':').is_some_and(|(id, secret)| {
                (5..=16).contains(&id.len())
                    && id.bytes().all(|b| b.is_ascii_digit())
                    && (30..=64).contains(&secret.len())
                    && secret.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
            })
        };
        let token = match raw.strip_prefix("bot") {
            Some(rest) if fits(rest) => rest,
            _ if fits(raw) => raw,
            _ => return Err(ShapeError::Malformed),
        };
        let bot_id = token.split_once(':').map(|(id, _)| id.to_string()).unwrap_or_default();
        Ok(Self { token: token.parse().expect("infallible"), bot_id })
    }

    pub fn expose(&self) -> &str {
        self.token.expose()
    }

    pub fn bot_id(&self) -> &str {
        &self.bot_id
    }
}

/// The bot, as `getMe` describes it.
#[derive(Debug, Clone)]
pub struct BotInfo {
    pub id: String,
    pub name: String,
    pub username: String,
}

#[derive(Debug)]
pub enum CallError {
    /// 401 or 404: unknown, revoked or malformed token.
    InvalidToken,
    /// 429: wait this long.
    RateLimited(u64),
    /// No answer in time, no connection, or a 5xx.
    Unreachable,
    /// Telegram refused the call (e.g. the chat is unknown), with its description.
    Refused(String),
}

async fn call(api: &Integrations, token: &TelegramToken, method: &str, params: Value) -> Result<Value, CallError> {
    let url = format!("{}/bot{}/{method}", api.telegram_api_base, token.expose());
    let res = match api.http.post(url).json(&params).send().await {
        Ok(res) => res,
        Err(e) => {
            // The token is in the URL: log the error without it.
            tracing::info!(method, error = %e.without_url(), "the Telegram Bot API did not answer");
            return Err(CallError::Unreachable);
        }
    };
    let status = res.status().as_u16();
    let body: Value = res.json().await.unwrap_or(Value::Null);
    match status {
        200 if body["ok"] == true => Ok(body["result"].clone()),
        401 | 404 => Err(CallError::InvalidToken),
        429 => Err(CallError::RateLimited(body["parameters"]["retry_after"].as_u64().unwrap_or(30))),
        500.. => Err(CallError::Unreachable),
        _ => Err(CallError::Refused(super::scrub(body["description"].as_str().unwrap_or("refused")))),
    }
}

/// Checks the token with `getMe`: it must be a bot, and the bot whose id the token names.
pub async fn get_me(api: &Integrations, token: &TelegramToken) -> Result<BotInfo, CallError> {
    let me = call(api, token, "getMe", json!({})).await?;
    let id = me["id"].as_i64().map(|id| id.to_string()).unwrap_or_default();
    if me["is_bot"] != true || id != token.bot_id() {
        return Err(CallError::InvalidToken);
    }
    Ok(BotInfo {
        id,
        name: me["first_name"].as_str().unwrap_or_default().chars().take(64).collect(),
        username: me["username"].as_str().unwrap_or_default().chars().take(64).collect(),
    })
}

/// Sends `text` to `chat_id` as the bot.
pub async fn send_message(
    api: &Integrations,
    token: &TelegramToken,
    chat_id: &str,
    text: &str,
) -> Result<(), CallError> {
    call(api, token, "sendMessage", json!({ "chat_id": chat_id, "text": text })).await.map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shapes_from_the_research_vectors() {
        let real = TelegramToken::parse(" 110201543:AAHdqTcvCH1vGWJxfSe1ofSAs0K5PALDsaw\n").unwrap();
        assert_eq!(real.bot_id(), "110201543");
        assert!(TelegramToken::parse("123456:ABC-DEF1234ghIkl-zyx57W2v1u123ew11").is_ok(), "the docs' example");
        assert_eq!(
            TelegramToken::parse("bot110201543:AAHdqTcvCH1vGWJxfSe1ofSAs0K5PALDsaw").unwrap().bot_id(),
            "110201543"
        );
        for bad in [
            "110201543:AAHdqTcvCH1vGWJxfSe1ofSAs0K5PALDsaw/../x",
            "110201543:AAHdqTcvCH1vGWJxfSe1ofSAs0K5PALDsaw/getMe",
            "110201543:AAHdqTcvCH1vGWJxfSe1ofSAs0K5PALDsaw?x=1",
            "110201543:AAHdqTcvCH1vGWJxfSe1ofSAs0K5PALDsaw#x",
            "110201543:short",
            "abc:AAHdqTcvCH1vGWJxfSe1ofSAs0K5PALDsaw",
        ] {
            assert_eq!(TelegramToken::parse(bad).unwrap_err(), ShapeError::Malformed, "{bad}");
        }
        assert_eq!(TelegramToken::parse("  ").unwrap_err(), ShapeError::Empty);
        assert_eq!(TelegramToken::parse(&"1".repeat(10_000)).unwrap_err(), ShapeError::TooLong);
        assert!(!format!("{real:?}").contains("AAHdq"), "Debug never shows the token");
    }
}
