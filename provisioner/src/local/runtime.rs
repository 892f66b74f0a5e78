//! Installs Node 24, a pinned OpenClaw and its Discord plugin with npm, once, and finds them
//! afterwards.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use tokio::process::Command;

use crate::{Progress, ProvisionError, Stage};

pub const NODE_VERSION: &str = "24.21.0";
pub const OPENCLAW_VERSION: &str = "2026.9.6";
/// `@openclaw/discord`, pinned with OpenClaw (agent/Dockerfile pins the same): OpenClaw refuses
/// `channels.discord` without it.
pub const DISCORD_PLUGIN_VERSION: &str = "2026.9.6";
pub const DISCORD_PLUGIN: &str = "@openclaw/discord";
const INSTALL_TIMEOUT: Duration = Duration::from_secs(900);

/// A usable runtime: the Node binary and the OpenClaw entry script.
#[derive(Debug, Clone)]
pub struct Runtime {
    pub node: PathBuf,
    pub openclaw: PathBuf,
}

impl Runtime {
    /// The Discord plugin installed next to OpenClaw (`node_modules/@openclaw/discord`), if any:
    /// the directory OpenClaw is told to load plugins from.
    pub fn discord_plugin(&self) -> Option<PathBuf> {
        let modules = self.openclaw.parent()?.parent()?;
        let dir = modules.join(DISCORD_PLUGIN);
        dir.join("package.json").is_file().then_some(dir)
    }
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

    /// Names every pinned version: an install missing one of them (an older Roost's, without the
    /// plugin) is installed over.
    fn marker(&self) -> PathBuf {
        self.dir.join(format!(
            ".roost-runtime-node{NODE_VERSION}-openclaw{OPENCLAW_VERSION}-discord{DISCORD_PLUGIN_VERSION}"
        ))
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
        npm_install(&self.dir, &[format!("node@{NODE_VERSION}")], None).await?;
        let node_dir = self.installed().node.parent().map(Path::to_path_buf).unwrap_or_default();
        // OpenClaw's preinstall refuses older Node, so npm must run under the Node just installed.
        progress.report(
            user_id,
            Stage::InstallingRuntime,
            &format!("installing OpenClaw {OPENCLAW_VERSION} and its Discord plugin with npm (step 2 of 2)"),
        );
        // One npm run for both: the plugin's peer dependency is this OpenClaw.
        let packages = [format!("openclaw@{OPENCLAW_VERSION}"), format!("{DISCORD_PLUGIN}@{DISCORD_PLUGIN_VERSION}")];
        npm_install(&self.dir, &packages, Some(&node_dir)).await?;
        let runtime = self.installed();
        if let Some(plugin) = runtime.discord_plugin() {
            link_openclaw_peer(&plugin).await?;
        }
        if !runtime.node.exists() || !runtime.openclaw.exists() || runtime.discord_plugin().is_none() {
            return Err(ProvisionError::Install(
                "npm finished but node, openclaw.mjs or the Discord plugin is missing".into(),
            ));
        }
        tokio::fs::write(
            self.marker(),
            format!("node {NODE_VERSION}\nopenclaw {OPENCLAW_VERSION}\n{DISCORD_PLUGIN} {DISCORD_PLUGIN_VERSION}\n"),
        )
        .await?;
        Ok(())
    }
}

/// OpenClaw refuses to load a plugin whose `openclaw` peer dependency is not linked inside it
/// (its own installer links it; npm, with the peer hoisted beside it, does not):
/// `@openclaw/discord/node_modules/openclaw` → the runtime's `openclaw`.
pub async fn link_openclaw_peer(plugin: &Path) -> Result<(), ProvisionError> {
    let modules = plugin.join("node_modules");
    let link = modules.join("openclaw");
    if tokio::fs::symlink_metadata(&link).await.is_ok() {
        return Ok(());
    }
    tokio::fs::create_dir_all(&modules).await?;
    tokio::fs::symlink("../../../openclaw", &link).await?;
    Ok(())
}

async fn npm_install(dir: &Path, packages: &[String], node_dir: Option<&Path>) -> Result<(), ProvisionError> {
    let package = packages.join(" ");
    let mut cmd = Command::new("npm");
    cmd.args(["install", "--no-audit", "--no-fund", "--loglevel=error", "--prefix"]).arg(dir).args(packages);
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

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn an_install_without_the_discord_plugin_counts_as_not_installed() {
        let dir = tempfile::tempdir().unwrap();
        let modules = dir.path().join("node_modules");
        std::fs::create_dir_all(modules.join("openclaw")).unwrap();
        std::fs::write(modules.join("openclaw/openclaw.mjs"), "").unwrap();
        // What an older Roost left: its marker names Node and OpenClaw only.
        std::fs::write(dir.path().join(format!(".roost-runtime-node{NODE_VERSION}-openclaw{OPENCLAW_VERSION}")), "")
            .unwrap();
        let installer = Installer::new(dir.path().to_path_buf(), None, None);
        assert!(installer.resolved().await.is_err(), "the next ensure installs the plugin over it");

        std::fs::write(installer.marker(), "").unwrap();
        let runtime = installer.resolved().await.unwrap();
        assert_eq!(runtime.discord_plugin(), None, "no plugin directory yet");
        std::fs::create_dir_all(modules.join(DISCORD_PLUGIN)).unwrap();
        std::fs::write(modules.join(DISCORD_PLUGIN).join("package.json"), "{}").unwrap();
        assert_eq!(runtime.discord_plugin(), Some(modules.join("@openclaw/discord")));
        link_openclaw_peer(&modules.join(DISCORD_PLUGIN)).await.unwrap();
        let peer = modules.join("@openclaw/discord/node_modules/openclaw/openclaw.mjs");
        assert!(peer.exists(), "the plugin finds the runtime's OpenClaw as its peer");
        link_openclaw_peer(&modules.join(DISCORD_PLUGIN)).await.unwrap();
    }
}
