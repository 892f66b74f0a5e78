//! Agents an earlier run of Roost left behind (it crashed, or was killed before stopping them).

use std::path::Path;
use std::time::{Duration, Instant};

pub const PID_FILE: &str = "agent.pid";
const STOP_GRACE: Duration = Duration::from_secs(8);

/// Stops agents whose pid files an earlier run left behind, if the pid still runs OpenClaw,
/// except those of the users in `keep`.
pub async fn reap(users_dir: &Path, keep: &[String]) {
    let Ok(entries) = std::fs::read_dir(users_dir) else { return };
    let dirs = entries.flatten().filter(|e| !keep.iter().any(|k| e.file_name() == k.as_str())).map(|e| e.path());
    reap_dirs(dirs.collect()).await;
}

/// Stops the agent a user's pid file names, if it still runs: taking over from an instance that
/// lost the user's lease leaves nothing of its agent running.
pub async fn reap_user(user_dir: &Path) {
    reap_dirs(vec![user_dir.to_path_buf()]).await;
}

async fn reap_dirs(dirs: Vec<std::path::PathBuf>) {
    let mut pids = Vec::new();
    for dir in dirs {
        let pid_file = dir.join(PID_FILE);
        let Some(pid) = std::fs::read_to_string(&pid_file).ok().and_then(|s| s.trim().parse::<u32>().ok()) else {
            continue;
        };
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        if String::from_utf8_lossy(&cmdline).contains("openclaw") {
            tracing::warn!(pid, "stopping an agent left behind by an earlier run");
            signal_group(pid, libc::SIGTERM);
            pids.push(pid);
        }
        let _ = std::fs::remove_file(pid_file);
    }
    let deadline = Instant::now() + STOP_GRACE;
    while !pids.is_empty() && Instant::now() < deadline {
        pids.retain(|pid| Path::new(&format!("/proc/{pid}")).exists());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for pid in pids {
        signal_group(pid, libc::SIGKILL);
    }
}

fn signal_group(pid: u32, signal: i32) {
    // SAFETY: kill(2) on a group whose leader we just saw running OpenClaw under this id.
    unsafe { libc::kill(-(pid as i32), signal) };
}
