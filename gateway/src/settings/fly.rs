//! The `--fly-*` flags, checked in one pass: `--agent-provider fly` needs a token, an org, an
//! image and at least one region; every value is checked for what it must look like. The token
//! is never put into a problem line.

use provisioner::fly::{Guest, check_address_template, parse_machine_size};

use super::Problems;
use crate::config::AgentArgs;
use crate::secret::SecretString;

pub struct FlyAgents {
    pub api_token: SecretString,
    pub org: String,
    pub regions: Vec<String>,
    pub image: String,
    pub api_base: String,
    pub agent_address: String,
    pub guest: Guest,
    /// `--agent-ready-timeout-secs`: how long a started machine's agent may take to answer ready.
    pub ready_timeout: std::time::Duration,
}

/// `None` with every problem noted, or the checked values.
pub(super) fn fly(agents: &AgentArgs, problems: &mut Problems) -> Option<FlyAgents> {
    let args = &agents.fly;
    let before = problems.lines().len();
    let present =
        |value: &Option<String>| value.as_deref().map(str::trim).filter(|v| !v.is_empty()).map(str::to_string);

    let token = args.fly_api_token.clone().filter(|t| !t.expose().trim().is_empty());
    match &token {
        None => problems.push(
            "--agent-provider fly needs --fly-api-token (ROOST_FLY_API_TOKEN): an org-scoped Fly API token, \
             from `fly tokens create org`",
        ),
        Some(t) if t.expose().chars().any(|c| c.is_control()) => {
            problems.push("--fly-api-token holds control characters, which an HTTP header cannot carry")
        }
        Some(_) => {}
    }
    let org = present(&args.fly_org);
    if org.is_none() {
        problems.push("--agent-provider fly needs --fly-org (ROOST_FLY_ORG): the org slug user apps are created in");
    }
    let image = present(&args.fly_image);
    if image.is_none() {
        problems.push("--agent-provider fly needs --fly-image (ROOST_FLY_IMAGE): the agent image to run");
    }
    let regions: Vec<String> =
        args.fly_regions.iter().map(|r| r.trim().to_string()).filter(|r| !r.is_empty()).collect();
    if regions.is_empty() {
        problems
            .push("--agent-provider fly needs at least one region in --fly-regions (ROOST_FLY_REGIONS), e.g. iad,ord");
    }
    for region in &regions {
        // Fly regions are three-letter codes; volumes take no meta-regions such as `us` (pitfall 6).
        if region.len() != 3 || !region.bytes().all(|b| b.is_ascii_lowercase()) {
            problems.push(format!("--fly-regions: {region:?} is not a Fly region code like iad or ams"));
        }
    }
    match url::Url::parse(args.fly_api_base.trim()) {
        Ok(url) if matches!(url.scheme(), "http" | "https") && url.host_str().is_some() => {}
        _ => problems.push(format!("--fly-api-base: {:?} is not an http:// or https:// URL", args.fly_api_base)),
    }
    if let Err(e) = check_address_template(&args.fly_agent_address) {
        problems.push(format!("--fly-agent-address: {e}"));
    }
    let guest =
        parse_machine_size(&args.fly_machine_size).map_err(|e| problems.push(format!("--fly-machine-size: {e}")));

    if problems.lines().len() > before {
        return None;
    }
    Some(FlyAgents {
        api_token: token?,
        org: org?,
        regions,
        image: image?,
        api_base: args.fly_api_base.trim().to_string(),
        agent_address: args.fly_agent_address.clone(),
        guest: guest.ok()?,
        ready_timeout: std::time::Duration::from_secs(agents.agent_ready_timeout_secs),
    })
}
