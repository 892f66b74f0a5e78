//! The gateway's side of agent lifecycles: the host's agent slots and the line for them, what
//! counts as an agent being in use, and the watcher that stops idle agents.

pub mod activity;
mod channels;
pub mod fly_reconcile;
pub mod leases;
mod reconcile;
pub mod slots;
mod watcher;

pub use reconcile::reconcile;
pub use watcher::watch;

use std::time::Duration;

/// When agents are stopped for idleness.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IdlePolicy {
    /// `None`: never (an idle agent still makes room for someone waiting).
    pub timeout: Option<Duration>,
}

/// The default `--max-agents`: what this host's memory holds at the measured ~1.2 GB per real
/// OpenClaw agent, and at least one.
pub fn default_max_agents() -> usize {
    const PER_AGENT_BYTES: u64 = 1_200 * 1024 * 1024;
    let total = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|text| {
            let line = text.lines().find(|l| l.starts_with("MemTotal:"))?;
            line.split_whitespace().nth(1)?.parse::<u64>().ok()
        })
        .map(|kib| kib * 1024)
        .unwrap_or(0);
    ((total / PER_AGENT_BYTES) as usize).max(1)
}

/// `30m`, `45s`, `2h`, `90` (seconds) or `0` (never).
pub fn parse_duration(raw: &str) -> Result<Option<Duration>, String> {
    billing::plans::parse_duration(raw)
}

/// "30 min", "45 s", "2 h".
pub fn describe(duration: Duration) -> String {
    let secs = duration.as_secs();
    if secs.is_multiple_of(3600) {
        format!("{} h", secs / 3600)
    } else if secs.is_multiple_of(60) {
        format!("{} min", secs / 60)
    } else {
        format!("{secs} s")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn idle_timeouts_read_as_people_write_them() {
        assert_eq!(parse_duration("30m"), Ok(Some(Duration::from_secs(1800))));
        assert_eq!(parse_duration("45s"), Ok(Some(Duration::from_secs(45))));
        assert_eq!(parse_duration("2h"), Ok(Some(Duration::from_secs(7200))));
        assert_eq!(parse_duration("90"), Ok(Some(Duration::from_secs(90))));
        assert_eq!(parse_duration("0"), Ok(None));
        for bad in ["", "m", "30x", "-5m", "1.5h", "18446744073709551615h"] {
            assert!(parse_duration(bad).is_err(), "{bad:?}");
        }
        assert_eq!(describe(Duration::from_secs(1800)), "30 min");
        assert_eq!(describe(Duration::from_secs(45)), "45 s");
        assert!(default_max_agents() >= 1);
    }
}
