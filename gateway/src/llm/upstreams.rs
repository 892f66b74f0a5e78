//! The providers this server proxies to, built once from the flags.

use std::time::Duration;

use anyhow::Context;
use axum::http::{HeaderName, HeaderValue, header};

use super::LlmApi;
use crate::config::LlmArgs;
use crate::secret::SecretString;

const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

pub struct Upstreams {
    openai: Option<Upstream>,
    anthropic: Option<Upstream>,
    default_model: Option<String>,
    client: reqwest::Client,
}

/// One provider: where it is, and how the operator's key is presented to it.
pub struct Upstream {
    base_url: String,
    auth_name: HeaderName,
    /// Marked sensitive, so printing it shows nothing.
    auth_value: HeaderValue,
}

impl Upstreams {
    /// The upstreams the flags describe, or every problem with them.
    pub fn from_args(args: &LlmArgs) -> Result<Self, Vec<String>> {
        let mut problems = Vec::new();
        let openai = match (&args.llm_openai_base_url, &args.llm_openai_api_key) {
            (Some(url), Some(key)) => Upstream::new(LlmApi::OpenAi, url, key)
                .map_err(|e| problems.push(format!("--llm-openai-base-url / --llm-openai-api-key: {e:#}")))
                .ok(),
            (Some(_), None) => {
                problems.push("--llm-openai-base-url needs --llm-openai-api-key".into());
                None
            }
            (None, Some(_)) => {
                problems
                    .push("--llm-openai-api-key needs --llm-openai-base-url (e.g. https://api.openai.com/v1)".into());
                None
            }
            (None, None) => None,
        };
        let anthropic_base = normalize_base_url(&args.llm_anthropic_base_url)
            .map_err(|e| problems.push(format!("--llm-anthropic-base-url: {e:#}")))
            .ok();
        let anthropic = match (&args.llm_anthropic_api_key, anthropic_base) {
            (Some(key), Some(url)) => Upstream::new(LlmApi::Anthropic, &url, key)
                .map_err(|e| problems.push(format!("--llm-anthropic-api-key: {e:#}")))
                .ok(),
            _ => None,
        };
        if args.llm_model.as_deref().is_some_and(|m| m.trim().is_empty()) {
            problems.push("--llm-model must not be empty".into());
        }
        if args.llm_upstream_timeout_secs == 0 {
            problems.push("--llm-upstream-timeout-secs must be at least 1".into());
        }
        // No total timeout: a streamed answer may run for many minutes. The read timeout
        // bounds the wait for the response headers and every silence between chunks instead.
        let client = reqwest::Client::builder()
            .user_agent(concat!("roost/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(CONNECT_TIMEOUT)
            .read_timeout(Duration::from_secs(args.llm_upstream_timeout_secs.max(1)))
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| problems.push(format!("LLM HTTP client: {e}")))
            .ok();
        match client {
            Some(client) if problems.is_empty() => Ok(Self {
                openai,
                anthropic,
                default_model: args.llm_model.as_ref().map(|m| m.trim().to_owned()),
                client,
            }),
            _ => Err(problems),
        }
    }

    pub fn upstream(&self, api: LlmApi) -> Option<&Upstream> {
        match api {
            LlmApi::OpenAi => self.openai.as_ref(),
            LlmApi::Anthropic => self.anthropic.as_ref(),
        }
    }

    /// The API agents should be configured to speak: OpenAI when both are set up.
    pub fn preferred_api(&self) -> Option<LlmApi> {
        [LlmApi::OpenAi, LlmApi::Anthropic].into_iter().find(|api| self.upstream(*api).is_some())
    }

    pub fn default_model(&self) -> Option<&str> {
        self.default_model.as_deref()
    }

    pub(super) fn client(&self) -> &reqwest::Client {
        &self.client
    }
}

impl Upstream {
    fn new(api: LlmApi, base_url: &str, key: &SecretString) -> anyhow::Result<Self> {
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
fn normalize_base_url(raw: &str) -> anyhow::Result<String> {
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
