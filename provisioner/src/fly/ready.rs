//! Where a Fly agent answers (the address template: its sidecar, `roost-agent`), how its
//! readiness is checked (the sidecar's `/roost/ready`, which is ready once OpenClaw's `/readyz`
//! is: `started` only means the VM booted, research pitfall 8), and the machine size flag.

use std::time::{Duration, Instant};

use super::types::Guest;
use crate::{Progress, ProvisionError, Stage};

/// The default agent address: the sidecar on the machine's own 6PN name, which follows it across
/// migrations (research §7.1; a stored `private_ip` would not).
pub const DEFAULT_AGENT_ADDRESS: &str = "ws://{machine_id}.vm.{app}.internal:8080/";

/// The header the sidecar admits Roost by (it strips it before anything reaches OpenClaw).
pub const AGENT_SECRET_HEADER: &str = roost_agent::SECRET_HEADER;

/// The default `--fly-machine-size`: what a real OpenClaw gateway needs (about 1.2 GB resident,
/// research §2.5's example).
pub const DEFAULT_MACHINE_SIZE: &str = "shared-cpu-2x";
const DEFAULT_MEMORY_MB: u32 = 2048;

/// How long one readiness probe may take, and the pause between probes.
const PROBE_TIMEOUT: Duration = Duration::from_secs(5);
const PROBE_EVERY: Duration = Duration::from_millis(250);
const MAX_READY_BODY: usize = 64 * 1024;

/// The agent's WebSocket address from the template: `{machine_id}`, `{app}` and `{region}` are
/// replaced. Ids and names are plain (`[a-z0-9_-]`), so nothing needs escaping.
pub fn agent_address(template: &str, app: &str, machine_id: &str, region: &str) -> String {
    template.replace("{machine_id}", machine_id).replace("{app}", app).replace("{region}", region)
}

/// Checks a template once, at start: a `ws://` or `wss://` URL once its placeholders are filled.
pub fn check_address_template(template: &str) -> Result<(), String> {
    let sample = agent_address(template, "app", "machine", "iad");
    let url = reqwest::Url::parse(&sample).map_err(|e| format!("{template:?} is not a URL ({e})"))?;
    if !matches!(url.scheme(), "ws" | "wss") || url.host_str().is_none() {
        return Err(format!("{template:?} must be a ws:// or wss:// URL with a host"));
    }
    Ok(())
}

/// `ws://host:port/…` → `http://host:port/roost/ready`.
fn readyz_url(address: &str) -> Option<reqwest::Url> {
    let mut url = reqwest::Url::parse(address).ok()?;
    let scheme = if url.scheme() == "wss" { "https" } else { "http" };
    url.set_scheme(scheme).ok()?;
    url.set_path(roost_agent::READY_PATH);
    url.set_query(None);
    Some(url)
}

/// Probes the sidecar until it says `{"ready": true}`, reporting its stage and what OpenClaw
/// still waits for; [`ProvisionError::NotReady`] after `timeout`.
pub(super) async fn wait_ready(
    http: &reqwest::Client,
    user_id: &str,
    agent_secret: &str,
    address: &str,
    timeout: Duration,
    progress: &dyn Progress,
) -> Result<(), ProvisionError> {
    let url = readyz_url(address).ok_or_else(|| ProvisionError::Start(format!("bad agent address {address:?}")))?;
    let started = Instant::now();
    let mut last = String::new();
    loop {
        let probe = http.get(url.clone()).header(AGENT_SECRET_HEADER, agent_secret).timeout(PROBE_TIMEOUT);
        let detail = match probe.send().await {
            // The sidecar admits only this machine's secret: an app secret that has not reached
            // the machine yet (or a machine that is not ours) answers this.
            Ok(res) if res.status() == reqwest::StatusCode::UNAUTHORIZED => {
                "your agent's machine does not accept Roost's key yet".to_string()
            }
            Ok(res) => match bounded_body(res).await {
                Some(body) => match serde_json::from_slice::<serde_json::Value>(&body) {
                    Ok(body) if body["ready"] == true => return Ok(()),
                    Ok(body) => {
                        let failing: Vec<&str> =
                            body["failing"].as_array().into_iter().flatten().filter_map(|v| v.as_str()).collect();
                        // The sidecar's own words (e.g. "OpenClaw exited …; restarting it in 4 s"),
                        // bounded: the machine runs untrusted code.
                        let stage = body["stage"].as_str().filter(|s| s.len() <= 200);
                        match (stage, failing.is_empty()) {
                            (Some(stage), true) => format!("your agent is starting: {stage}"),
                            (Some(stage), false) => {
                                format!("your agent is starting: {stage} (waiting for: {})", failing.join(", "))
                            }
                            (None, true) => "your agent is starting".to_string(),
                            (None, false) => format!("your agent is starting (waiting for: {})", failing.join(", ")),
                        }
                    }
                    Err(_) => "your agent is starting".to_string(),
                },
                None => "your agent is starting".to_string(),
            },
            Err(_) => "waiting for your agent to listen".to_string(),
        };
        if detail != last {
            progress.report(user_id, Stage::WaitingReady, &detail);
            last = detail;
        }
        if started.elapsed() > timeout {
            return Err(ProvisionError::NotReady(timeout.as_secs()));
        }
        tokio::time::sleep(PROBE_EVERY).await;
    }
}

/// The body, read a chunk at a time up to `MAX_READY_BODY` (`None` past it): the machine runs
/// untrusted code, and a readiness answer is a few hundred bytes.
async fn bounded_body(mut res: reqwest::Response) -> Option<Vec<u8>> {
    let mut body = Vec::new();
    while let Some(chunk) = res.chunk().await.ok()? {
        if body.len() + chunk.len() > MAX_READY_BODY {
            return None;
        }
        body.extend_from_slice(&chunk);
    }
    Some(body)
}

/// `shared-cpu-Nx` or `performance-Nx`, optionally `:<memory MB>` (a multiple of 256; default
/// 2048 MB). Per-plan sizes come later; this is one size for every agent.
pub fn parse_machine_size(size: &str) -> Result<Guest, String> {
    let (preset, memory) = match size.split_once(':') {
        Some((preset, mb)) => {
            let mb: u32 = mb.trim().parse().map_err(|_| format!("{mb:?} is not a memory size in MB"))?;
            (preset.trim(), mb)
        }
        None => (size.trim(), DEFAULT_MEMORY_MB),
    };
    let (kind, count) = if let Some(rest) = preset.strip_prefix("shared-cpu-") {
        ("shared", rest)
    } else if let Some(rest) = preset.strip_prefix("performance-") {
        ("performance", rest)
    } else {
        return Err(format!("{size:?} is not a Fly size like shared-cpu-2x or performance-1x"));
    };
    let cpus: u32 = count
        .strip_suffix('x')
        .and_then(|n| n.parse().ok())
        .filter(|n| [1, 2, 4, 8, 16].contains(n))
        .ok_or_else(|| format!("{size:?}: the CPU count must be 1x, 2x, 4x, 8x or 16x"))?;
    if memory < 256 || memory % 256 != 0 {
        return Err(format!("{size:?}: memory must be a multiple of 256 MB"));
    }
    Ok(Guest { cpu_kind: kind.to_string(), cpus, memory_mb: memory })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse_and_bad_ones_are_named() {
        let g = parse_machine_size(DEFAULT_MACHINE_SIZE).unwrap();
        assert_eq!((g.cpu_kind.as_str(), g.cpus, g.memory_mb), ("shared", 2, 2048));
        let g = parse_machine_size("performance-1x:4096").unwrap();
        assert_eq!((g.cpu_kind.as_str(), g.cpus, g.memory_mb), ("performance", 1, 4096));
        for bad in ["", "huge", "shared-cpu-3x", "shared-cpu-2x:1000", "shared-cpu-2x:lots"] {
            assert!(parse_machine_size(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn addresses_fill_the_template_and_give_readyz() {
        let a = agent_address(DEFAULT_AGENT_ADDRESS, "roost-abc", "1857156b526dd8", "iad");
        assert_eq!(a, "ws://1857156b526dd8.vm.roost-abc.internal:8080/");
        assert_eq!(readyz_url(&a).unwrap().as_str(), "http://1857156b526dd8.vm.roost-abc.internal:8080/roost/ready");
        assert_eq!(readyz_url("wss://h/x?y").unwrap().as_str(), "https://h/roost/ready");
        assert!(check_address_template(DEFAULT_AGENT_ADDRESS).is_ok());
        assert!(check_address_template("ws://127.0.0.1:9/").is_ok());
        assert!(check_address_template("http://{app}/").is_err());
        assert!(check_address_template("nonsense").is_err());
    }
}
