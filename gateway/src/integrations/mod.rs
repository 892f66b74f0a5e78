//! Telegram and Discord bots connected to a user's agent: token checks against the providers'
//! APIs, the token sealed at rest and handed to the agent in a file only it reads, the channel
//! pushed with `config.patch`, and status, pairing and test messages (design §7).

pub mod agent;
pub mod discord;
pub mod status;
pub mod telegram;

use std::time::Duration;

use crate::auth::failures::FailureCounter;
use crate::auth::rate_limit::KeyedLimiter;
use crate::domain::UserId;
use crate::error::AppError;
use crate::settings::IntegrationSettings;

/// Provider calls per user per minute, refused or not (the page retries every few seconds while
/// an agent wakes).
const CALLS_PER_MINUTE: u32 = 30;

/// Discord's own REST API (the `--discord-api-base` default).
pub const DISCORD_API_BASE: &str = "https://discord.com/api/v10";

/// One call to Telegram or Discord while a user waits.
pub const PROVIDER_TIMEOUT: Duration = Duration::from_secs(10);

pub struct Integrations {
    pub telegram_api_base: String,
    pub discord_api_base: String,
    pub http: reqwest::Client,
    /// Calls to the providers per user.
    pub calls: KeyedLimiter<UserId>,
    /// Refused token checks per user: each counts toward Discord's ban of our IP.
    failed_checks: FailureCounter<UserId>,
}

impl Integrations {
    pub fn new(settings: IntegrationSettings) -> anyhow::Result<Self> {
        let http = reqwest::Client::builder()
            .user_agent(concat!("DiscordBot (https://github.com/roost, ", env!("CARGO_PKG_VERSION"), ")"))
            .timeout(PROVIDER_TIMEOUT)
            .connect_timeout(Duration::from_secs(5))
            .redirect(reqwest::redirect::Policy::none())
            .build()?;
        Ok(Self {
            telegram_api_base: settings.telegram_api_base,
            discord_api_base: settings.discord_api_base,
            http,
            calls: KeyedLimiter::per_minute(CALLS_PER_MINUTE),
            failed_checks: FailureCounter::new(settings.failures_per_hour, Duration::from_secs(3600)),
        })
    }

    /// Whether `user` may have a token checked now.
    pub fn check_allowed(&self, user: &UserId) -> Result<(), AppError> {
        if let Some(wait) = self.failed_checks.refused_for(user) {
            let minutes = wait.as_secs() / 60 + 1;
            return Err(AppError::new(
                axum::http::StatusCode::TOO_MANY_REQUESTS,
                "rate_limited",
                format!(
                    "Too many bot tokens were refused for this account in the last hour. Check the token, then try \
                     again in {minutes} minutes."
                ),
            )
            .retry_after(wait.as_secs() + 1));
        }
        self.calls.check(user)
    }

    /// A token check `user` asked for was refused (a bad token, a user token, a 429).
    pub fn check_failed(&self, user: &UserId) {
        self.failed_checks.record(user);
    }

    pub fn retain_recent(&self) {
        self.calls.retain_recent();
        self.failed_checks.retain_recent();
    }

    /// Whether agents must be told where the Bot API is (it is not Telegram's own).
    pub fn telegram_api_root_for_agent(&self) -> Option<&str> {
        (self.telegram_api_base != "https://api.telegram.org").then_some(self.telegram_api_base.as_str())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Channel {
    Telegram,
    Discord,
}

impl Channel {
    pub const ALL: [Channel; 2] = [Channel::Telegram, Channel::Discord];

    pub fn parse(raw: &str) -> Option<Self> {
        match raw {
            "telegram" => Some(Self::Telegram),
            "discord" => Some(Self::Discord),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Telegram => "telegram",
            Self::Discord => "discord",
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            Self::Telegram => "Telegram",
            Self::Discord => "Discord",
        }
    }
}

/// Who may DM the bot (OpenClaw's `dmPolicy`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DmPolicy {
    /// Strangers get a code; the user approves them here.
    Pairing,
    /// Only these numeric ids (and senders already approved).
    Allowlist(Vec<String>),
    /// Anyone.
    Open,
}

impl DmPolicy {
    pub fn name(&self) -> &'static str {
        match self {
            Self::Pairing => "pairing",
            Self::Allowlist(_) => "allowlist",
            Self::Open => "open",
        }
    }

    /// Parses the request's policy; an allowlist needs at least one numeric id (OpenClaw refuses
    /// an empty one).
    pub fn parse(name: &str, allow_from: &[String]) -> Result<Self, &'static str> {
        match name {
            "pairing" => Ok(Self::Pairing),
            "open" => Ok(Self::Open),
            "allowlist" => {
                if allow_from.is_empty() || allow_from.len() > 50 {
                    return Err("An allowlist needs between 1 and 50 numeric user ids.");
                }
                if !allow_from.iter().all(|id| (1..=24).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_digit())) {
                    return Err("Allowlist entries are numeric user ids, such as 123456789.");
                }
                Ok(Self::Allowlist(allow_from.to_vec()))
            }
            _ => Err("The DM policy is one of pairing, allowlist or open."),
        }
    }

    /// The stored form: the name, with an allowlist's ids after a colon.
    pub fn stored(&self) -> String {
        match self {
            Self::Allowlist(ids) => format!("allowlist:{}", ids.join(",")),
            other => other.name().to_string(),
        }
    }

    pub fn from_stored(text: &str) -> Self {
        match text.split_once(':') {
            Some(("allowlist", ids)) => Self::Allowlist(ids.split(',').map(str::to_string).collect()),
            _ if text == "open" => Self::Open,
            _ => Self::Pairing,
        }
    }

    /// `dmPolicy` and `allowFrom` for the agent's config. `allowFrom: null` clears a list an
    /// earlier policy left.
    pub fn config(&self) -> serde_json::Value {
        match self {
            Self::Pairing => serde_json::json!({ "dmPolicy": "pairing", "allowFrom": null }),
            Self::Open => serde_json::json!({ "dmPolicy": "open", "allowFrom": ["*"] }),
            Self::Allowlist(ids) => serde_json::json!({ "dmPolicy": "allowlist", "allowFrom": ids }),
        }
    }
}

/// A bot answers at any hour, so the agents of users with one connected (on a plan that includes
/// bots) are started when Roost starts (one at a time: the host's slots decide how many run).
/// The lifecycle rules then keep them on while the channel runs.
pub async fn wake_bot_agents(state: crate::app::AppState) {
    let users = match state.db.conn() {
        Ok(conn) => crate::db::integrations::users_with_channels(&conn).await,
        Err(e) => Err(e),
    };
    let users = match users {
        Ok(users) => users,
        Err(e) => return tracing::warn!(error = %e, "could not list the agents with bots"),
    };
    for user in users {
        // A plan without bots (downgraded since the bot was connected) does not keep one on.
        if !crate::stripe_sync::plan_keeps_bots(&state, &user).await {
            continue;
        }
        if let Err(e) = state.machines.ensure_ready(&user).await {
            tracing::warn!(user_id = %user, error = %e, "the agent of a connected bot did not start");
        }
    }
}

/// Removes anything shaped like a bot token from text that came from elsewhere (an agent's
/// error, a provider's description), so it can be shown and logged.
pub fn scrub(text: &str) -> String {
    let cut: String = text.chars().take(300).collect();
    let is_token_char = |c: char| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | ':' | '.');
    let mut out = String::with_capacity(cut.len());
    let mut word = String::new();
    let flush = |word: &mut String, out: &mut String| {
        let bare = word.strip_prefix("bot").unwrap_or(word);
        let telegram = bare
            .split_once(':')
            .is_some_and(|(id, rest)| id.len() >= 5 && id.bytes().all(|b| b.is_ascii_digit()) && rest.len() >= 20);
        let discord = word.len() >= 50 && word.matches('.').count() == 2;
        if telegram || discord {
            if bare.len() < word.len() {
                out.push_str("bot");
            }
            out.push_str("<token>");
        } else {
            out.push_str(word);
        }
        word.clear();
    };
    for c in cut.chars() {
        if is_token_char(c) {
            word.push(c);
        } else {
            flush(&mut word, &mut out);
            out.push(c);
        }
    }
    flush(&mut word, &mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policies_round_trip_and_allowlists_need_ids() {
        let ids = vec!["4242".to_string()];
        let p = DmPolicy::parse("allowlist", &ids).unwrap();
        assert_eq!(DmPolicy::from_stored(&p.stored()), p);
        assert_eq!(DmPolicy::from_stored("open"), DmPolicy::Open);
        assert!(DmPolicy::parse("allowlist", &[]).is_err());
        assert!(DmPolicy::parse("allowlist", &["@me".into()]).is_err());
        assert!(DmPolicy::parse("everyone", &[]).is_err());
        assert_eq!(DmPolicy::Open.config()["allowFrom"][0], "*");
    }

    #[test]
    fn scrub_hides_both_token_shapes() {
        let t = "call to /bot110201543:AAHdqTcvCH1vGWJxfSe1ofSAs0K5PALDsaw/getMe failed";
        assert_eq!(scrub(t), "call to /bot<token>/getMe failed");
        let d = "bad MTk4NjIyNDgzNDcxOTI1MjQ4.Cl2FMQ.ZnCjm1XVW7vRze4b7Cq4se7kKWs here";
        assert_eq!(scrub(d), "bad <token> here");
    }
}
