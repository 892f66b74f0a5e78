//! What the kernel offers, probed once at start, and what Roost does with it.

use std::fmt;

/// The oldest Landlock ABI that keeps Roost's files safe: ABI 3 (Linux 6.2) is the first that
/// can refuse `truncate(2)`, without which an agent could empty the database it cannot read.
pub const MIN_ABI: u8 = 3;
/// The newest ABI whose features the rules use: 4 adds TCP bind rules, 5 device ioctls, 6
/// signal and abstract-socket scoping (7 only adds audit-log flags, which agents don't need).
const MAX_USED_ABI: u8 = 6;

/// Landlock as the running kernel offers it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Support {
    Landlock {
        abi: u8,
    },
    /// Built into the kernel but not enabled at boot (not in `lsm=`).
    NotEnabled,
    /// Not built into this kernel (or not Linux).
    Missing,
}

impl Support {
    pub fn probe() -> Self {
        #[cfg(target_os = "linux")]
        {
            const LANDLOCK_CREATE_RULESET_VERSION: libc::c_uint = 1;
            // SAFETY: with a null attribute and size 0 this call only returns the ABI version.
            let version = unsafe {
                libc::syscall(
                    libc::SYS_landlock_create_ruleset,
                    std::ptr::null::<libc::c_void>(),
                    0usize,
                    LANDLOCK_CREATE_RULESET_VERSION,
                )
            };
            if version > 0 {
                return Self::Landlock { abi: version.min(u8::MAX as libc::c_long) as u8 };
            }
            if std::io::Error::last_os_error().raw_os_error() == Some(libc::EOPNOTSUPP) {
                return Self::NotEnabled;
            }
        }
        Self::Missing
    }
}

/// How local agents run, decided once at start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Sandbox {
    /// Every agent is confined with the features of this Landlock ABI.
    Landlock { abi: u8 },
    /// Agents run without Landlock (still with no capabilities and bounded resources).
    Unconfined { why: Refusal, accepted: bool },
}

/// Why agents cannot be confined here, in words an operator can act on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal(String);

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl Sandbox {
    /// Landlock when the kernel has enough of it; otherwise unconfined, which the caller must
    /// limit to one account unless the operator accepted the risk (`accept_unconfined`).
    pub fn choose(support: Support, accept_unconfined: bool) -> Self {
        let why = match support {
            Support::Landlock { abi } if abi >= MIN_ABI => return Self::Landlock { abi: abi.min(MAX_USED_ABI) },
            Support::Landlock { abi } => format!(
                "this kernel's Landlock is ABI {abi}, and sandboxing agents needs ABI {MIN_ABI} (Linux 6.2) or later"
            ),
            Support::NotEnabled => {
                "Landlock is built into this kernel but not enabled (add it to the lsm= boot parameter)".into()
            }
            Support::Missing => {
                "this kernel has no Landlock (Linux 6.2 or later with CONFIG_SECURITY_LANDLOCK is needed)".into()
            }
        };
        Self::Unconfined { why: Refusal(why), accepted: accept_unconfined }
    }

    /// Why only one account may be served, when agents run unconfined without the operator's consent.
    pub fn single_account_reason(&self) -> Option<&Refusal> {
        match self {
            Self::Unconfined { why, accepted: false } => Some(why),
            _ => None,
        }
    }

    /// The Landlock features in force, for the start-up log.
    pub fn describe(&self) -> String {
        match self {
            Self::Landlock { abi } => {
                let mut features = vec!["filesystem (read, write, execute, rename, truncate)", "ptrace scoping"];
                if *abi >= 4 {
                    features.push("TCP bind to the agent's own port only");
                }
                if *abi >= 5 {
                    features.push("device ioctls");
                }
                if *abi >= 6 {
                    features.push("signal and abstract Unix socket scoping");
                }
                format!("Landlock ABI {abi}: {}", features.join(", "))
            }
            Self::Unconfined { why, accepted } => {
                format!("unconfined ({why}){}", if *accepted { ", accepted with --unsandboxed-agents" } else { "" })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_kernel_with_enough_landlock_confines_agents() {
        assert_eq!(Sandbox::choose(Support::Landlock { abi: 3 }, false), Sandbox::Landlock { abi: 3 });
        assert_eq!(Sandbox::choose(Support::Landlock { abi: 6 }, false), Sandbox::Landlock { abi: 6 });
        assert_eq!(Sandbox::choose(Support::Landlock { abi: 9 }, true), Sandbox::Landlock { abi: 6 });
        assert!(Sandbox::choose(Support::Landlock { abi: 6 }, false).single_account_reason().is_none());
    }

    #[test]
    fn without_enough_landlock_one_account_is_served_unless_the_risk_is_accepted() {
        for support in [Support::Missing, Support::NotEnabled, Support::Landlock { abi: 2 }] {
            let refused = Sandbox::choose(support, false);
            let why = refused.single_account_reason().unwrap_or_else(|| panic!("{support:?} must be refused"));
            assert!(!why.to_string().contains('\n'), "one line: {why}");
            let accepted = Sandbox::choose(support, true);
            assert!(matches!(accepted, Sandbox::Unconfined { accepted: true, .. }));
            assert!(accepted.single_account_reason().is_none());
        }
        let old = Sandbox::choose(Support::Landlock { abi: 2 }, false).single_account_reason().unwrap().to_string();
        assert!(old.contains("ABI 2") && old.contains("ABI 3"), "{old}");
    }

    #[test]
    fn the_probe_reads_the_running_kernel() {
        // Whatever this kernel has, the probe answers without failing; CI's kernel has Landlock.
        let support = Support::probe();
        if std::env::var("CI").is_ok_and(|v| v == "true") {
            assert!(matches!(support, Support::Landlock { abi } if abi >= MIN_ABI), "{support:?}");
        }
    }
}
