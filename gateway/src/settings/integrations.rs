//! The bot integrations' flags → [`IntegrationSettings`].

use super::Problems;
use crate::config::IntegrationArgs;

pub struct IntegrationSettings {
    /// Telegram Bot API root, no trailing slash.
    pub telegram_api_base: String,
    /// Discord REST base with its version, no trailing slash.
    pub discord_api_base: String,
    /// Refused token checks per user per hour.
    pub failures_per_hour: u32,
}

pub(super) fn integrations(args: &IntegrationArgs, problems: &mut Problems) -> Option<IntegrationSettings> {
    let before = problems.lines().len();
    let telegram = problems.check("--telegram-api-base", api_base(&args.telegram_api_base));
    let discord = problems.check("--discord-api-base", api_base(&args.discord_api_base));
    if args.bot_check_failures_per_hour == 0 {
        problems.push("--bot-check-failures-per-hour must be at least 1, or one typo would lock bots out for good");
    }
    (problems.lines().len() == before).then(|| IntegrationSettings {
        telegram_api_base: telegram.unwrap_or_default(),
        discord_api_base: discord.unwrap_or_default(),
        failures_per_hour: args.bot_check_failures_per_hour,
    })
}

fn api_base(raw: &str) -> anyhow::Result<String> {
    let url = url::Url::parse(raw.trim()).map_err(|e| anyhow::anyhow!("not a URL: {e}"))?;
    anyhow::ensure!(matches!(url.scheme(), "http" | "https"), "must be an http(s) URL");
    anyhow::ensure!(url.query().is_none() && url.fragment().is_none(), "must have no query or fragment");
    Ok(url.as_str().trim_end_matches('/').to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bases_lose_their_trailing_slash_and_must_be_http() {
        assert_eq!(api_base("https://api.telegram.org/").unwrap(), "https://api.telegram.org");
        assert_eq!(api_base("http://127.0.0.1:9/api/v10").unwrap(), "http://127.0.0.1:9/api/v10");
        assert!(api_base("ftp://x").is_err());
        assert!(api_base("https://x/?a=1").is_err());
    }
}
