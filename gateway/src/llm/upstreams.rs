//! The providers this server proxies to, and how the operator's key is presented to each.

use std::time::Duration;

use anyhow::Context;
use axum::http::{HeaderName, HeaderValue, header};

use super::LlmApi;
use crate::secret::SecretString;

const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

pub struct Upstreams {
    openai: Option<Upstream>,
    anthropic: Option<Upstream>,
    preferred: Option<LlmApi>,
    default_model: Option<String>,
    own_keys: OwnKeySettings,
    client: reqwest::Client,
}

/// Users' own keys: where they are sent, and whether their calls cost credits.
#[derive(Clone, Debug)]
pub struct OwnKeySettings {
    /// OpenAI's API base for users' OpenAI keys: `--llm-openai-base-url`, else OpenAI's own.
    pub openai_base_url: String,
    /// Anthropic's API base for users' Anthropic keys: `--llm-anthropic-base-url`.
    pub anthropic_base_url: String,
    /// `--byok-debit`: calls with a user's own key are charged in credits as well.
    pub debit: bool,
    /// How long the one check call of a newly saved key may take.
    pub check_timeout: Duration,
}

/// One provider: where it is, and how the operator's key is presented to it.
pub struct Upstream {
    base_url: String,
    auth_name: HeaderName,
    /// Marked sensitive, so printing it shows nothing.
    auth_value: HeaderValue,
}

/// The providers as `settings` parsed them; [`Upstreams::new`] adds the HTTP client.
pub struct UpstreamsConfig {
    pub openai: Option<Upstream>,
    pub anthropic: Option<Upstream>,
    pub default_model: Option<String>,
    pub own_keys: OwnKeySettings,
    /// How long a provider may stay silent: before its response headers, and between chunks.
    pub read_timeout: Duration,
}

impl UpstreamsConfig {
    /// The API agents should be configured to speak: OpenAI when both are set up.
    pub fn preferred_api(&self) -> Option<LlmApi> {
        match (&self.openai, &self.anthropic) {
            (Some(_), _) => Some(LlmApi::OpenAi),
            (None, Some(_)) => Some(LlmApi::Anthropic),
            (None, None) => None,
        }
    }
}

impl Upstreams {
    pub fn new(config: UpstreamsConfig) -> anyhow::Result<Self> {
        // No total timeout: a streamed answer may run for many minutes. The read timeout
        // bounds the wait for the response headers and every silence between chunks instead.
        let client = reqwest::Client::builder()
            .user_agent(concat!("roost/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(CONNECT_TIMEOUT)
            .read_timeout(config.read_timeout)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .context("LLM HTTP client")?;
        let preferred = config.preferred_api();
        let UpstreamsConfig { openai, anthropic, default_model, own_keys, .. } = config;
        Ok(Self { openai, anthropic, preferred, default_model, own_keys, client })
    }

    pub fn upstream(&self, api: LlmApi) -> Option<&Upstream> {
        match api {
            LlmApi::OpenAi => self.openai.as_ref(),
            LlmApi::Anthropic => self.anthropic.as_ref(),
        }
    }

    /// The API agents are configured to speak.
    pub fn preferred_api(&self) -> Option<LlmApi> {
        self.preferred
    }

    pub fn default_model(&self) -> Option<&str> {
        self.default_model.as_deref()
    }

    pub fn own_keys(&self) -> &OwnKeySettings {
        &self.own_keys
    }

    pub(super) fn client(&self) -> &reqwest::Client {
        &self.client
    }
}

impl Upstream {
    pub fn new(api: LlmApi, base_url: &str, key: &SecretString) -> anyhow::Result<Self> {
        let (auth_name, auth_value) = match api {
            LlmApi::OpenAi => (header::AUTHORIZATION, format!("Bearer {}", key.expose())),
            LlmApi::Anthropic => (HeaderName::from_static("x-api-key"), key.expose().to_owned()),
        };
        let mut auth_value = HeaderValue::try_from(auth_value)
            .ok()
            .filter(|_| !key.expose().trim().is_empty())
            .context("the API key must be non-empty printable ASCII")?;
        auth_value.set_sensitive(true);
        Ok(Self { base_url: normalize_base_url(base_url)?, auth_name, auth_value })
    }

    /// The provider URL for `path` (`/chat/completions`, `/v1/messages`, …).
    pub(super) fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base_url)
    }

    pub(super) fn auth_header(&self) -> (HeaderName, HeaderValue) {
        (self.auth_name.clone(), self.auth_value.clone())
    }
}

/// An http(s) URL with no credentials, query or fragment, without its trailing slash.
pub fn normalize_base_url(raw: &str) -> anyhow::Result<String> {
    let url = url::Url::parse(raw.trim()).context("not a URL")?;
    anyhow::ensure!(matches!(url.scheme(), "http" | "https"), "must be http:// or https://");
    anyhow::ensure!(
        url.username().is_empty() && url.password().is_none(),
        "must not hold credentials (the key has its own flag)"
    );
    anyhow::ensure!(url.query().is_none() && url.fragment().is_none(), "must have no query or fragment");
    Ok(url.as_str().trim_end_matches('/').to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_urls_are_checked_and_lose_their_trailing_slash() {
        assert_eq!(normalize_base_url("https://api.openai.com/v1/").unwrap(), "https://api.openai.com/v1");
        assert_eq!(normalize_base_url("https://api.anthropic.com").unwrap(), "https://api.anthropic.com");
        for bad in
            ["api.openai.com/v1", "ftp://x.example", "https://user:pw@x.example/v1", "https://x.example/v1?key=1"]
        {
            assert!(normalize_base_url(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_key_header_is_sensitive_and_never_printed() {
        let key: SecretString = "sk-secret-123".parse().unwrap();
        let upstream = Upstream::new(LlmApi::OpenAi, "https://x.example/v1", &key).unwrap();
        let (name, value) = upstream.auth_header();
        assert_eq!(name, header::AUTHORIZATION);
        assert_eq!(value, "Bearer sk-secret-123");
        assert!(value.is_sensitive());
        assert!(!format!("{value:?}").contains("sk-secret"));
        let bad: SecretString = "sk-\nsplit".parse().unwrap();
        let err = Upstream::new(LlmApi::Anthropic, "https://x.example", &bad).err().unwrap();
        assert!(!format!("{err:#}").contains("split"), "the error never echoes the key");
    }
}
