//! Installs Node 24 and a pinned OpenClaw with npm, once, and finds them afterwards.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use tokio::process::Command;

use crate::{Progress, ProvisionError, Stage};

pub const NODE_VERSION: &str = "24.21.0";
pub const OPENCLAW_VERSION: &str = "2026.9.6";
const INSTALL_TIMEOUT: Duration = Duration::from_secs(900);

/// A usable runtime: the Node binary and the OpenClaw entry script.
#[derive(Debug, Clone)]
pub struct Runtime {
    pub node: PathBuf,
    pub openclaw: PathBuf,
}

pub struct Installer {
    dir: PathBuf,
    openclaw_bin: Option<PathBuf>,
    node_bin: Option<PathBuf>,
    lock: tokio::sync::Mutex<()>,
}

impl Installer {
    pub fn new(dir: PathBuf, openclaw_bin: Option<PathBuf>, node_bin: Option<PathBuf>) -> Self {
        Self { dir, openclaw_bin, node_bin, lock: tokio::sync::Mutex::new(()) }
    }

    fn marker(&self) -> PathBuf {
        self.dir.join(format!(".roost-runtime-node{NODE_VERSION}-openclaw{OPENCLAW_VERSION}"))
    }

    fn installed(&self) -> Runtime {
        let modules = self.dir.join("node_modules");
        Runtime { node: modules.join("node/bin/node"), openclaw: modules.join("openclaw/openclaw.mjs") }
    }

    /// The runtime to launch agents with; fails if it is not installed.
    pub async fn resolved(&self) -> Result<Runtime, ProvisionError> {
        if let Some(openclaw) = &self.openclaw_bin {
            let node = self.node_bin.clone().unwrap_or_else(|| {
                let installed = self.installed().node;
                if installed.exists() { installed } else { PathBuf::from("node") }
            });
            return Ok(Runtime { node, openclaw: openclaw.clone() });
        }
        if self.marker().exists() {
            Ok(self.installed())
        } else {
            Err(ProvisionError::Install(format!("the runtime is not installed in {}", self.dir.display())))
        }
    }

    /// Installs the runtime unless it is already there (or `--openclaw-bin` was given).
    pub async fn ensure(&self, user_id: &str, progress: &dyn Progress) -> Result<(), ProvisionError> {
        if self.openclaw_bin.is_some() || self.marker().exists() {
            return Ok(());
        }
        let _guard = self.lock.lock().await;
        tokio::fs::create_dir_all(&self.dir).await?;
        // Another Roost process (or test binary) may be installing into the same directory.
        let _file_lock = FileLock::acquire(self.dir.join(".install.lock")).await?;
        if self.marker().exists() {
            return Ok(());
        }
        let package_json = self.dir.join("package.json");
        if !package_json.exists() {
            tokio::fs::write(&package_json, "{\"name\":\"roost-agent-runtime\",\"private\":true}\n").await?;
        }
        progress.report(
            user_id,
            Stage::InstallingRuntime,
            &format!("installing Node {NODE_VERSION} with npm (step 1 of 2)"),
        );
        npm_install(&self.dir, &format!("node@{NODE_VERSION}"), None).await?;
        let node_dir = self.installed().node.parent().map(Path::to_path_buf).unwrap_or_default();
        // OpenClaw's preinstall refuses older Node, so npm must run under the Node just installed.
        progress.report(
            user_id,
            Stage::InstallingRuntime,
            &format!("installing OpenClaw {OPENCLAW_VERSION} with npm (step 2 of 2)"),
        );
        npm_install(&self.dir, &format!("openclaw@{OPENCLAW_VERSION}"), Some(&node_dir)).await?;
        let runtime = self.installed();
        if !runtime.node.exists() || !runtime.openclaw.exists() {
            return Err(ProvisionError::Install("npm finished but node or openclaw.mjs is missing".into()));
        }
        tokio::fs::write(self.marker(), format!("node {NODE_VERSION}\nopenclaw {OPENCLAW_VERSION}\n")).await?;
        Ok(())
    }
}

async fn npm_install(dir: &Path, package: &str, node_dir: Option<&Path>) -> Result<(), ProvisionError> {
    let mut cmd = Command::new("npm");
    cmd.args(["install", "--no-audit", "--no-fund", "--loglevel=error", "--prefix"]).arg(dir).arg(package);
    cmd.current_dir(dir).stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::piped()).kill_on_drop(true);
    if let Some(node_dir) = node_dir {
        let path = std::env::var_os("PATH").unwrap_or_default();
        let mut joined = std::ffi::OsString::from(node_dir);
        joined.push(":");
        joined.push(path);
        cmd.env("PATH", joined);
    }
    let output = tokio::time::timeout(INSTALL_TIMEOUT, cmd.output())
        .await
        .map_err(|_| {
            ProvisionError::Install(format!("npm install {package} took longer than {} s", INSTALL_TIMEOUT.as_secs()))
        })?
        .map_err(|e| ProvisionError::Install(format!("could not run npm (is Node.js installed?): {e}")))?;
    if output.status.success() {
        Ok(())
    } else {
        let stderr = String::from_utf8_lossy(&output.stderr);
        let tail: Vec<&str> = stderr.lines().rev().take(5).collect();
        Err(ProvisionError::Install(format!(
            "npm install {package} failed: {}",
            tail.into_iter().rev().collect::<Vec<_>>().join(" | ")
        )))
    }
}

/// An exclusive `flock` on a file, released on drop.
struct FileLock(std::fs::File);

impl FileLock {
    async fn acquire(path: PathBuf) -> Result<Self, ProvisionError> {
        tokio::task::spawn_blocking(move || {
            let file = std::fs::OpenOptions::new().create(true).truncate(false).write(true).open(&path)?;
            use std::os::fd::AsRawFd;
            // SAFETY: flock on a file descriptor we own; blocks this blocking-pool thread only.
            if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX) } != 0 {
                return Err(std::io::Error::last_os_error().into());
            }
            Ok(FileLock(file))
        })
        .await
        .map_err(|e| ProvisionError::Install(format!("lock task failed: {e}")))?
    }
}

impl Drop for FileLock {
    fn drop(&mut self) {
        use std::os::fd::AsRawFd;
        // SAFETY: unlocking the descriptor we locked; closing the file would release it too.
        unsafe { libc::flock(self.0.as_raw_fd(), libc::LOCK_UN) };
    }
}
