//! The model providers' flags → [`UpstreamsConfig`], or one line per problem.

use std::time::Duration;

use super::Problems;
use crate::config::LlmArgs;
use crate::llm::{LlmApi, Upstream, UpstreamsConfig, normalize_base_url};

pub(super) fn upstreams(args: &LlmArgs, problems: &mut Problems) -> Option<UpstreamsConfig> {
    let before = problems.lines().len();
    let openai = match (&args.llm_openai_base_url, &args.llm_openai_api_key) {
        (Some(url), Some(key)) => {
            problems.check("--llm-openai-base-url / --llm-openai-api-key", Upstream::new(LlmApi::OpenAi, url, key))
        }
        (Some(_), None) => {
            problems.push("--llm-openai-base-url needs --llm-openai-api-key");
            None
        }
        (None, Some(_)) => {
            problems.push("--llm-openai-api-key needs --llm-openai-base-url (e.g. https://api.openai.com/v1)");
            None
        }
        (None, None) => None,
    };
    let anthropic_base = problems.check("--llm-anthropic-base-url", normalize_base_url(&args.llm_anthropic_base_url));
    let anthropic = match (&args.llm_anthropic_api_key, anthropic_base) {
        (Some(key), Some(url)) => {
            problems.check("--llm-anthropic-api-key", Upstream::new(LlmApi::Anthropic, &url, key))
        }
        _ => None,
    };
    if args.llm_model.as_deref().is_some_and(|m| m.trim().is_empty()) {
        problems.push("--llm-model must not be empty");
    }
    if args.llm_upstream_timeout_secs == 0 {
        problems.push("--llm-upstream-timeout-secs must be at least 1");
    }
    (problems.lines().len() == before).then(|| UpstreamsConfig {
        openai,
        anthropic,
        default_model: args.llm_model.as_ref().map(|m| m.trim().to_owned()),
        read_timeout: Duration::from_secs(args.llm_upstream_timeout_secs),
    })
}

/// The operator's catalog file, checked as a whole.
pub fn catalog(path: &std::path::Path) -> anyhow::Result<billing::plans::Catalog> {
    let text = std::fs::read_to_string(path).map_err(|e| anyhow::anyhow!("cannot be read: {e}"))?;
    Ok(billing::plans::Catalog::from_toml(&text)?)
}
