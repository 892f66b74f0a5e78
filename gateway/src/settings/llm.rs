//! The model providers' flags → [`UpstreamsConfig`], or one line per problem.

use std::time::Duration;

use super::Problems;
use crate::config::LlmArgs;
use crate::llm::{LlmApi, OwnKeySettings, Upstream, UpstreamsConfig, normalize_base_url};

/// Where users' own OpenAI keys go when the operator has no OpenAI-compatible base URL.
const OPENAI_BASE_URL: &str = "https://api.openai.com/v1";

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
    let anthropic = match (&args.llm_anthropic_api_key, &anthropic_base) {
        (Some(key), Some(url)) => problems.check("--llm-anthropic-api-key", Upstream::new(LlmApi::Anthropic, url, key)),
        _ => None,
    };
    let openai_base = match &args.llm_openai_base_url {
        Some(url) => problems.check("--llm-openai-base-url", normalize_base_url(url)),
        None => Some(OPENAI_BASE_URL.to_owned()),
    };
    if args.byok_check_timeout_secs == 0 {
        problems.push("--byok-check-timeout-secs must be at least 1");
    }
    if args.llm_model.as_deref().is_some_and(|m| m.trim().is_empty()) {
        problems.push("--llm-model must not be empty");
    }
    if args.llm_upstream_timeout_secs == 0 {
        problems.push("--llm-upstream-timeout-secs must be at least 1");
    }
    let own_keys = OwnKeySettings {
        openai_base_url: openai_base.unwrap_or_default(),
        anthropic_base_url: anthropic_base.unwrap_or_default(),
        debit: args.byok_debit,
        check_timeout: Duration::from_secs(args.byok_check_timeout_secs),
    };
    (problems.lines().len() == before).then(|| UpstreamsConfig {
        openai,
        anthropic,
        own_keys,
        default_model: args.llm_model.as_ref().map(|m| m.trim().to_owned()),
        read_timeout: Duration::from_secs(args.llm_upstream_timeout_secs),
    })
}

/// The operator's catalog file, checked as a whole: billing's own rules, then each plan's
/// machine size by the provisioner's parser (the one `--fly-machine-size` uses).
pub fn catalog(path: &std::path::Path) -> anyhow::Result<billing::plans::Catalog> {
    let text = std::fs::read_to_string(path).map_err(|e| anyhow::anyhow!("cannot be read: {e}"))?;
    let catalog = billing::plans::Catalog::from_toml(&text)?;
    for (id, plan) in catalog.all_plans() {
        if let Some(Err(e)) = plan.machine_size.as_deref().map(provisioner::fly::parse_machine_size) {
            anyhow::bail!("the plan {:?} ({id}): machine_size {e}", plan.name);
        }
    }
    Ok(catalog)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(text: &str) -> anyhow::Result<billing::plans::Catalog> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("plans.toml");
        std::fs::write(&path, text).unwrap();
        catalog(&path)
    }

    #[test]
    fn plan_sizes_parse_and_a_bad_one_names_its_plan() {
        let free = "[free]\nname = \"Free\"\nmonthly_credits = 10\n";
        let priced = "[models.m]\ninput_per_million = 1\noutput_per_million = 2\n";
        let plan = |size: &str| {
            format!("{free}{priced}[plans.price_p]\nname = \"Pro\"\nmonthly_credits = 1\nmachine_size = \"{size}\"\n")
        };
        let catalog = load(&format!("{}suspend = true\n", plan("performance-2x:4096"))).unwrap();
        let pro = catalog.plan("price_p").unwrap();
        let guest = provisioner::fly::parse_machine_size(pro.machine_size.as_deref().unwrap()).unwrap();
        assert_eq!((guest.cpu_kind.as_str(), guest.cpus, guest.memory_mb), ("performance", 2, 4096));
        assert!(pro.suspend);
        assert!(!catalog.free.suspend, "suspend is off unless a plan says so");
        assert_eq!(catalog.free.machine_size, None);
        for (bad, says) in [
            ("huge", "is not a Fly size"),
            ("shared-cpu-3x", "CPU count"),
            ("shared-cpu-2x:1000", "multiple of 256"),
            ("shared-cpu-2x:lots", "not a memory size"),
        ] {
            let error = load(&plan(bad)).unwrap_err().to_string();
            assert!(error.contains("the plan \"Pro\" (price_p)") && error.contains(says), "{error}");
        }
        let error = load(&format!("{free}machine_size = \"tiny\"\n{priced}")).unwrap_err().to_string();
        assert!(error.contains("the plan \"Free\" (free)"), "{error}");
    }
}
