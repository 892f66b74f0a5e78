//! `roost agent-exec`: applies a [`Policy`] to the current process, then execs the agent. Runs
//! single-threaded, before any async runtime, so every rule holds for the one thread that execs.

use std::ffi::OsString;
use std::os::unix::process::CommandExt;
use std::path::Path;

use landlock::{
    ABI, Access, AccessFs, AccessNet, CompatLevel, Compatible, NetPort, PathBeneath, PathFd, Ruleset, RulesetAttr,
    RulesetCreatedAttr, RulesetStatus, Scope,
};

use super::{Policy, Rules};

#[derive(Debug, thiserror::Error)]
pub enum EnforceError {
    #[error("Landlock ABI {0} is not one this build knows")]
    UnknownAbi(u8),
    #[error("Landlock: {0}")]
    Landlock(#[from] landlock::RulesetError),
    #[error("Landlock was not fully enforced ({0:?}); refusing to run the agent unconfined")]
    NotEnforced(RulesetStatus),
    #[error("{what}: {source}")]
    Os { what: &'static str, source: std::io::Error },
}

/// Confines this process as the policy says and execs `program`. Returns only on failure, and
/// then nothing was run.
pub fn exec(policy: &Policy, program: &Path, args: &[OsString]) -> EnforceError {
    if let Err(e) = confine(policy) {
        return e;
    }
    let error = std::process::Command::new(program).args(args).exec();
    EnforceError::Os { what: "exec", source: error }
}

fn confine(policy: &Policy) -> Result<(), EnforceError> {
    set_limit(libc::RLIMIT_CORE, 0, "no core dumps")?;
    set_limit(libc::RLIMIT_NOFILE, policy.limits.open_files, "open files limit")?;
    set_limit(libc::RLIMIT_FSIZE, policy.limits.file_size_bytes, "file size limit")?;
    raise_oom_score(policy.limits.oom_score_adj)?;
    no_new_privileges()?;
    if let Some(rules) = &policy.rules {
        landlock(rules)?;
    }
    drop_capabilities()
}

fn abi(version: u8) -> Result<ABI, EnforceError> {
    Ok(match version {
        1 => ABI::V1,
        2 => ABI::V2,
        3 => ABI::V3,
        4 => ABI::V4,
        5 => ABI::V5,
        6 => ABI::V6,
        7 => ABI::V7,
        other => return Err(EnforceError::UnknownAbi(other)),
    })
}

fn landlock(rules: &Rules) -> Result<(), EnforceError> {
    let abi = abi(rules.abi)?;
    let all = AccessFs::from_all(abi);
    let read = AccessFs::from_read(abi);
    // Every feature of the chosen ABI is required: a kernel that silently drops one fails here.
    let mut ruleset = Ruleset::default().set_compatibility(CompatLevel::HardRequirement).handle_access(all)?;
    if rules.abi >= 4 {
        ruleset = ruleset.handle_access(AccessNet::BindTcp)?;
    }
    if rules.abi >= 6 {
        ruleset = ruleset.scope(Scope::Signal | Scope::AbstractUnixSocket)?;
    }
    let mut created = ruleset.create()?;
    for (paths, access) in [(&rules.read_write, all), (&rules.read_exec, read)] {
        for path in paths {
            // A path that vanished since the server built the policy is simply not granted.
            let Ok(fd) = PathFd::new(path) else { continue };
            let access = if path.is_dir() { access } else { access & AccessFs::from_file(abi) };
            created = created.add_rule(PathBeneath::new(fd, access))?;
        }
    }
    if rules.abi >= 4 {
        for port in &rules.bind_ports {
            created = created.add_rule(NetPort::new(*port, AccessNet::BindTcp))?;
        }
    }
    let status = created.restrict_self()?;
    match status.ruleset {
        RulesetStatus::FullyEnforced => Ok(()),
        other => Err(EnforceError::NotEnforced(other)),
    }
}

fn set_limit(resource: libc::__rlimit_resource_t, value: u64, what: &'static str) -> Result<(), EnforceError> {
    let limit = libc::rlimit { rlim_cur: value, rlim_max: value };
    // SAFETY: setrlimit reads the struct we pass and changes only this process's limits.
    if unsafe { libc::setrlimit(resource, &limit) } != 0 {
        return Err(EnforceError::Os { what, source: std::io::Error::last_os_error() });
    }
    Ok(())
}

/// Raising needs no privilege; lowering would, so a score already higher is kept.
fn raise_oom_score(target: i16) -> Result<(), EnforceError> {
    const PATH: &str = "/proc/self/oom_score_adj";
    let current: i16 = std::fs::read_to_string(PATH).ok().and_then(|s| s.trim().parse().ok()).unwrap_or(0);
    if current >= target {
        return Ok(());
    }
    std::fs::write(PATH, target.to_string()).map_err(|source| EnforceError::Os { what: "oom_score_adj", source })
}

fn no_new_privileges() -> Result<(), EnforceError> {
    // SAFETY: prctl with constant arguments; it only sets a flag on this process.
    if unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) } != 0 {
        return Err(EnforceError::Os { what: "no_new_privs", source: std::io::Error::last_os_error() });
    }
    Ok(())
}

/// When Roost runs as root, its agents must not: they would keep `CAP_SYS_PTRACE`,
/// `CAP_DAC_OVERRIDE`, `CAP_KILL`, `CAP_SYS_ADMIN` and the rest. Emptying the bounding set
/// means an exec, even as uid 0, grants nothing back.
fn drop_capabilities() -> Result<(), EnforceError> {
    let last: u32 =
        std::fs::read_to_string("/proc/sys/kernel/cap_last_cap").ok().and_then(|s| s.trim().parse().ok()).unwrap_or(63);
    for cap in 0..=last {
        // SAFETY: prctl with integer arguments. EINVAL means the cap does not exist; EPERM
        // means we lack CAP_SETPCAP, in which case we hold no capability to drop either.
        unsafe { libc::prctl(libc::PR_CAPBSET_DROP, cap as libc::c_ulong, 0, 0, 0) };
    }
    // SAFETY: as above; clears the ambient set.
    unsafe { libc::prctl(libc::PR_CAP_AMBIENT, libc::PR_CAP_AMBIENT_CLEAR_ALL as libc::c_ulong, 0, 0, 0) };
    #[repr(C)]
    struct Header {
        version: u32,
        pid: i32,
    }
    #[repr(C)]
    #[derive(Clone, Copy)]
    struct Data {
        effective: u32,
        permitted: u32,
        inheritable: u32,
    }
    const LINUX_CAPABILITY_VERSION_3: u32 = 0x2008_0522;
    let header = Header { version: LINUX_CAPABILITY_VERSION_3, pid: 0 };
    let data = [Data { effective: 0, permitted: 0, inheritable: 0 }; 2];
    // SAFETY: capset with a v3 header and two data words, as capset(2) describes.
    if unsafe { libc::syscall(libc::SYS_capset, &header as *const Header, data.as_ptr()) } != 0 {
        return Err(EnforceError::Os { what: "dropping capabilities", source: std::io::Error::last_os_error() });
    }
    Ok(())
}
