//! The rule set for one agent: which paths it may use and how, which port it may listen on, and
//! its resource limits. Pure data, built by the server and enforced by `roost agent-exec`.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::Sandbox;
use crate::local::Runtime;

/// System paths Node, a shell and common tools read or run; nothing here holds a secret.
const SYSTEM_READ_EXEC: &[&str] = &[
    "/usr",
    "/bin",
    "/sbin",
    "/lib",
    "/lib32",
    "/lib64",
    "/libx32",
    "/proc",
    "/sys/fs/cgroup",
    "/sys/devices/system/cpu",
    "/run/systemd/resolve",
];

/// The parts of `/etc` that name resolution, TLS, time zones, users and shells read. Not the
/// whole of `/etc`: when Roost runs as root, files such as `/etc/shadow` are its own.
const SYSTEM_ETC: &[&str] = &[
    "/etc/hosts",
    "/etc/resolv.conf",
    "/etc/nsswitch.conf",
    "/etc/host.conf",
    "/etc/gai.conf",
    "/etc/services",
    "/etc/protocols",
    "/etc/passwd",
    "/etc/group",
    "/etc/localtime",
    "/etc/timezone",
    "/etc/ssl",
    "/etc/ca-certificates",
    "/etc/pki",
    "/etc/alternatives",
    "/etc/ld.so.cache",
    "/etc/ld.so.conf",
    "/etc/ld.so.conf.d",
    "/etc/mime.types",
    "/etc/os-release",
    "/etc/debian_version",
    "/etc/profile",
    "/etc/bash.bashrc",
    "/etc/inputrc",
    "/etc/gitconfig",
];

/// Devices a process may open for writing. Not `/dev/shm`: it is shared by every process.
const DEVICES_READ_WRITE: &[&str] =
    &["/dev/null", "/dev/zero", "/dev/full", "/dev/random", "/dev/urandom", "/dev/tty", "/dev/ptmx", "/dev/pts"];

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Policy {
    /// `None` only when the operator accepted unconfined agents.
    pub rules: Option<Rules>,
    pub limits: Limits,
}

/// Landlock rules. Anything not granted here is denied.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rules {
    /// The Landlock ABI whose features are enforced (all of them are required).
    pub abi: u8,
    /// Full access beneath these paths.
    pub read_write: Vec<PathBuf>,
    /// Read, list and execute beneath these paths.
    pub read_exec: Vec<PathBuf>,
    /// The only TCP ports the agent may listen on (ABI 4 and later).
    pub bind_ports: Vec<u16>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Limits {
    pub open_files: u64,
    pub file_size_bytes: u64,
    /// Raised for the agent and all it spawns, so that under memory pressure the kernel ends an
    /// agent before Roost (which stays at 0).
    pub oom_score_adj: i16,
}

impl Default for Limits {
    fn default() -> Self {
        Self { open_files: 4096, file_size_bytes: 4 << 30, oom_score_adj: 500 }
    }
}

/// OpenClaw coordinates access to its state database through lock files it always keeps in
/// `/tmp/openclaw-state-locks-<uid>` (not configurable), one set per state path, named by a hash
/// of it. Agents of one uid share this directory: the one writable place they have in common.
pub fn openclaw_lock_dir() -> PathBuf {
    // SAFETY: getuid cannot fail.
    PathBuf::from(format!("/tmp/openclaw-state-locks-{}", unsafe { libc::getuid() }))
}

/// Creates the lock directory (0700) if needed, and refuses one that is not ours: in a shared
/// `/tmp` another user could have placed it, or a symlink, first.
pub fn prepare_lock_dir() -> std::io::Result<PathBuf> {
    use std::os::unix::fs::{DirBuilderExt, MetadataExt};
    let dir = openclaw_lock_dir();
    match std::fs::DirBuilder::new().mode(0o700).create(&dir) {
        Err(e) if e.kind() != std::io::ErrorKind::AlreadyExists => return Err(e),
        _ => {}
    }
    let meta = std::fs::symlink_metadata(&dir)?;
    // SAFETY: getuid cannot fail.
    if !meta.is_dir() || meta.uid() != unsafe { libc::getuid() } || meta.mode() & 0o022 != 0 {
        return Err(std::io::Error::other(format!("{} is not a private directory of this user", dir.display())));
    }
    Ok(dir)
}

/// Where one agent lives, and what it must never reach.
pub struct AgentPaths<'a> {
    /// `<data-dir>/users/<id>`: only its `state`, `home` and `tmp` are granted.
    pub agent_dir: &'a Path,
    /// `<data-dir>/users`: every other user's directory.
    pub users_dir: &'a Path,
    /// The data dir, the database and the secret key: never inside a granted path.
    pub protected: &'a [PathBuf],
    pub runtime: &'a Runtime,
}

#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    #[error("{granted} would be readable by agents, and it contains {protected}; move one of them")]
    Exposes { granted: String, protected: String },
    #[error("{0} would be readable by agents, and it holds other users' agents")]
    OtherUsers(String),
}

/// The writable directories of an agent, under its own directory.
pub const AGENT_WRITABLE: [&str; 3] = ["state", "home", "tmp"];

impl Policy {
    pub fn for_agent(sandbox: &Sandbox, paths: &AgentPaths<'_>, port: u16) -> Result<Self, PolicyError> {
        let Sandbox::Landlock { abi } = *sandbox else {
            return Ok(Self { rules: None, limits: Limits::default() });
        };
        let read_write: Vec<PathBuf> = AGENT_WRITABLE
            .iter()
            .map(|sub| paths.agent_dir.join(sub))
            .chain([openclaw_lock_dir()])
            .chain(existing(DEVICES_READ_WRITE))
            .collect();
        let read_exec: Vec<PathBuf> = runtime_roots(paths.runtime)
            .into_iter()
            .chain(existing(SYSTEM_READ_EXEC))
            .chain(existing(SYSTEM_ETC))
            .collect();
        check_exposure(&read_write, &read_exec, paths)?;
        Ok(Self {
            rules: Some(Rules { abi, read_write, read_exec, bind_ports: vec![port] }),
            limits: Limits::default(),
        })
    }
}

fn existing(paths: &[&str]) -> impl Iterator<Item = PathBuf> {
    paths.iter().map(PathBuf::from).filter(|p| p.exists())
}

/// Node's install prefix (`…/node/bin/node` → `…/node`) and the `node_modules` tree holding
/// OpenClaw and its hoisted dependencies.
fn runtime_roots(runtime: &Runtime) -> Vec<PathBuf> {
    let node = resolve(&runtime.node);
    let node_prefix = match node.parent() {
        Some(bin) if bin.file_name().is_some_and(|n| n == "bin") => bin.parent().unwrap_or(bin).to_path_buf(),
        Some(dir) => dir.to_path_buf(),
        None => node.clone(),
    };
    let openclaw = resolve(&runtime.openclaw);
    let openclaw_root = openclaw
        .ancestors()
        .find(|a| a.file_name().is_some_and(|n| n == "node_modules"))
        .or_else(|| openclaw.parent())
        .unwrap_or(&openclaw)
        .to_path_buf();
    let mut roots = vec![node_prefix, openclaw_root];
    roots.dedup();
    roots
}

/// An absolute, symlink-free path; a bare program name is looked up on `PATH`.
fn resolve(path: &Path) -> PathBuf {
    let found = if path.components().count() == 1 && !path.is_absolute() {
        std::env::var_os("PATH")
            .into_iter()
            .flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
            .map(|dir| dir.join(path))
            .find(|candidate| candidate.is_file())
            .unwrap_or_else(|| path.to_path_buf())
    } else {
        path.to_path_buf()
    };
    canonical(&found)
}

fn canonical(path: &Path) -> PathBuf {
    path.canonicalize().unwrap_or_else(|_| std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf()))
}

fn check_exposure(read_write: &[PathBuf], read_exec: &[PathBuf], paths: &AgentPaths<'_>) -> Result<(), PolicyError> {
    let users_dir = canonical(paths.users_dir);
    let agent_dir = canonical(paths.agent_dir);
    for granted in read_write.iter().chain(read_exec) {
        let granted = canonical(granted);
        for protected in paths.protected {
            let protected = canonical(protected);
            if protected.starts_with(&granted) {
                return Err(PolicyError::Exposes {
                    granted: granted.display().to_string(),
                    protected: protected.display().to_string(),
                });
            }
        }
        if users_dir.starts_with(&granted) || (granted.starts_with(&users_dir) && !granted.starts_with(&agent_dir)) {
            return Err(PolicyError::OtherUsers(granted.display().to_string()));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Layout {
        _root: tempfile::TempDir,
        data: PathBuf,
        runtime: Runtime,
    }

    fn layout() -> Layout {
        let root = tempfile::tempdir().unwrap();
        let data = root.path().join("data");
        let modules = data.join("runtime/node_modules");
        std::fs::create_dir_all(modules.join("node/bin")).unwrap();
        std::fs::create_dir_all(modules.join("openclaw")).unwrap();
        std::fs::write(modules.join("node/bin/node"), "").unwrap();
        std::fs::write(modules.join("openclaw/openclaw.mjs"), "").unwrap();
        std::fs::create_dir_all(data.join("users/u1")).unwrap();
        let runtime = Runtime { node: modules.join("node/bin/node"), openclaw: modules.join("openclaw/openclaw.mjs") };
        Layout { _root: root, data, runtime }
    }

    fn policy_for(layout: &Layout, runtime: &Runtime) -> Result<Policy, PolicyError> {
        let protected = [layout.data.clone(), layout.data.join("roost.db"), layout.data.join("secret.key")];
        let paths = AgentPaths {
            agent_dir: &layout.data.join("users/u1"),
            users_dir: &layout.data.join("users"),
            protected: &protected,
            runtime,
        };
        Policy::for_agent(&Sandbox::Landlock { abi: 6 }, &paths, 18_800)
    }

    fn granted(list: &[PathBuf], path: &Path) -> bool {
        list.iter().any(|g| canonical(path).starts_with(canonical(g)))
    }

    #[test]
    fn an_agent_may_write_only_its_own_state_home_and_temp() {
        let layout = layout();
        let rules = policy_for(&layout, &layout.runtime).unwrap().rules.unwrap();
        let own = layout.data.join("users/u1");
        for sub in AGENT_WRITABLE {
            assert!(granted(&rules.read_write, &own.join(sub)), "{sub} is writable");
        }
        for denied in [
            layout.data.clone(),
            layout.data.join("secret.key"),
            layout.data.join("roost.db"),
            own.clone(),
            own.join("agent.pid"),
            layout.data.join("users/u2/state"),
            layout.data.join("runtime"),
            PathBuf::from("/usr/bin"),
            PathBuf::from("/etc/passwd"),
            PathBuf::from("/tmp"),
            PathBuf::from("/dev/shm"),
        ] {
            assert!(!granted(&rules.read_write, &denied), "{} must not be writable", denied.display());
        }
        assert!(granted(&rules.read_write, Path::new("/dev/null")));
        assert!(granted(&rules.read_write, &openclaw_lock_dir()), "OpenClaw's fixed lock dir");
        assert_eq!(rules.bind_ports, vec![18_800], "it listens on its own port only");
    }

    #[test]
    fn an_agent_may_read_the_runtime_and_system_files_but_no_secret() {
        let layout = layout();
        let rules = policy_for(&layout, &layout.runtime).unwrap().rules.unwrap();
        let readable = |p: &Path| granted(&rules.read_exec, p) || granted(&rules.read_write, p);
        assert!(readable(&layout.runtime.node) && readable(&layout.runtime.openclaw));
        assert!(readable(Path::new("/usr/bin/env")) && readable(Path::new("/etc/resolv.conf")));
        for denied in [
            layout.data.join("secret.key"),
            layout.data.join("roost.db"),
            layout.data.join("users/u2/state/openclaw.json"),
            layout.data.join("users/u1/agent.log"),
            PathBuf::from("/etc/shadow"),
            PathBuf::from("/root"),
            PathBuf::from("/home"),
            PathBuf::from("/tmp"),
            PathBuf::from("/var"),
        ] {
            assert!(!readable(&denied), "{} must not be readable", denied.display());
        }
    }

    #[test]
    fn a_runtime_that_would_expose_the_data_dir_is_refused() {
        let layout = layout();
        // An OpenClaw script placed at the data dir's root would grant the whole data dir.
        let loose = Runtime { node: layout.runtime.node.clone(), openclaw: layout.data.join("openclaw.mjs") };
        std::fs::write(&loose.openclaw, "").unwrap();
        let err = policy_for(&layout, &loose).unwrap_err().to_string();
        assert!(err.contains("contains") && err.contains("data"), "{err}");
        // One under the users dir would grant other users' agents.
        let script = layout.data.join("users/u2/openclaw.mjs");
        std::fs::create_dir_all(script.parent().unwrap()).unwrap();
        std::fs::write(&script, "").unwrap();
        let shared = Runtime { node: layout.runtime.node.clone(), openclaw: script };
        assert!(matches!(policy_for(&layout, &shared), Err(PolicyError::OtherUsers(_))));
    }

    #[test]
    fn unconfined_agents_still_get_limits() {
        let layout = layout();
        let protected = [layout.data.clone()];
        let paths = AgentPaths {
            agent_dir: &layout.data.join("users/u1"),
            users_dir: &layout.data.join("users"),
            protected: &protected,
            runtime: &layout.runtime,
        };
        let sandbox = Sandbox::choose(super::super::Support::Missing, true);
        let policy = Policy::for_agent(&sandbox, &paths, 1).unwrap();
        assert_eq!(policy.rules, None);
        assert_eq!(policy.limits, Limits::default());
    }

    #[test]
    fn a_policy_survives_its_trip_through_the_command_line() {
        let layout = layout();
        let policy = policy_for(&layout, &layout.runtime).unwrap();
        let text = serde_json::to_string(&policy).unwrap();
        assert_eq!(serde_json::from_str::<Policy>(&text).unwrap(), policy);
        assert!(
            serde_json::from_str::<Policy>(
                r#"{"rules":null,"limits":{"open_files":1,"file_size_bytes":1,"oom_score_adj":0},"x":1}"#
            )
            .is_err()
        );
    }
}
