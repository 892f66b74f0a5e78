//! Writes the platform's config keys, then runs OpenClaw and keeps it running: a crash is
//! followed by a restart after a growing pause, and a stop (SIGTERM to the sidecar) becomes
//! SIGTERM to OpenClaw's whole process group, then SIGKILL if it outlasts the stop timeout.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use serde_json::Value;
use tokio::process::{Child, Command};
use tokio::sync::watch;

use crate::config::{self, LLM_CREDENTIAL_ENV, Model};
use crate::settings::Settings;

const FIRST_BACKOFF: Duration = Duration::from_secs(1);
const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// A run this long counts as healthy: the next crash starts the backoff over.
const HEALTHY_RUN: Duration = Duration::from_secs(60);

/// What the supervisor is doing, for `/roost/ready` while OpenClaw does not answer yet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stage {
    Preparing,
    Starting { start: u32 },
    Restarting { start: u32, exit: String, delay_secs: u64 },
    Stopping,
    Stopped,
}

impl Stage {
    pub fn describe(&self) -> String {
        match self {
            Self::Preparing => "writing OpenClaw's config".into(),
            Self::Starting { start: 1 } => "OpenClaw is starting".into(),
            Self::Starting { start } => format!("OpenClaw is starting again (start {start})"),
            Self::Restarting { exit, delay_secs, .. } => {
                format!("OpenClaw {exit}; restarting it in {delay_secs} s")
            }
            Self::Stopping => "OpenClaw is stopping".into(),
            Self::Stopped => "OpenClaw is stopped".into(),
        }
    }

    pub fn stopping(&self) -> bool {
        matches!(self, Self::Stopping | Self::Stopped)
    }
}

/// Merges the platform keys into the config file OpenClaw keeps (creating it and its dir), and
/// writes it whole (a temporary file renamed over it). An unreadable file is kept aside.
pub async fn write_config(settings: &Settings) -> std::io::Result<Value> {
    let path = settings.config_path();
    tokio::fs::create_dir_all(&settings.state_dir).await?;
    tokio::fs::create_dir_all(&settings.home_dir).await?;
    let existing = match tokio::fs::read(&path).await {
        Ok(bytes) => match serde_json::from_slice::<Value>(&bytes) {
            Ok(value) => value,
            Err(e) => {
                let aside = path.with_extension("json.unreadable");
                tracing::warn!(error = %e, aside = %aside.display(), "openclaw.json is not JSON; keeping it aside");
                tokio::fs::rename(&path, &aside).await?;
                Value::Null
            }
        },
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Value::Null,
        Err(e) => return Err(e),
    };
    let model = Model { base_url: &settings.llm_base_url, api: &settings.llm_api, model: &settings.llm_model };
    let mut platform = config::platform_keys(settings.openclaw_port, &model, settings.openclaw_log_file.as_deref());
    if !settings.plugin_paths.is_empty() {
        platform["plugins"]["load"] = serde_json::json!({ "paths": settings.plugin_paths });
    }
    for plugin in settings.plugin_paths.iter().filter(|p| p.ends_with(config::DISCORD_PLUGIN)) {
        let (state, plugin) = (settings.state_dir.clone(), plugin.clone());
        tokio::task::spawn_blocking(move || config::write_discord_install_record(&state, &plugin))
            .await
            .map_err(std::io::Error::other)??;
    }
    let mut merged = config::merge(existing, &platform);
    config::prune_channels(&mut merged);
    let tmp = path.with_extension("json.roost-tmp");
    tokio::fs::write(&tmp, serde_json::to_vec_pretty(&merged).expect("a JSON value serialises")).await?;
    set_private(&tmp).await?;
    tokio::fs::rename(&tmp, &path).await?;
    Ok(merged)
}

async fn set_private(path: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    tokio::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).await
}

/// OpenClaw's command: a clean environment holding only what it needs. The sidecar's own secret
/// is not in it: OpenClaw runs the user's (untrusted) code.
fn openclaw_command(settings: &Settings) -> Command {
    let node_dir: Option<PathBuf> = settings.node.parent().filter(|p| !p.as_os_str().is_empty()).map(Path::to_path_buf);
    let path = match node_dir {
        Some(dir) => format!("{}:/usr/local/bin:/usr/bin:/bin", dir.display()),
        None => "/usr/local/bin:/usr/bin:/bin".to_string(),
    };
    let mut cmd = Command::new(&settings.node);
    cmd.arg(&settings.openclaw)
        .args(["gateway", "run"])
        .env_clear()
        .env("PATH", path)
        .env("HOME", &settings.home_dir)
        .env("LANG", "C.UTF-8")
        .env("NODE_OPTIONS", format!("--max-old-space-size={}", settings.heap_mb))
        .env("OPENCLAW_STATE_DIR", &settings.state_dir)
        .env("OPENCLAW_CONFIG_PATH", settings.config_path())
        .env("OPENCLAW_GATEWAY_TOKEN", &settings.gateway_token)
        .env(LLM_CREDENTIAL_ENV, &settings.llm_credential)
        .current_dir(&settings.home_dir)
        .stdin(Stdio::null())
        // Its own process group: a stop reaches OpenClaw's helper processes too.
        .process_group(0)
        .kill_on_drop(true);
    // SAFETY: prctl is async-signal-safe; OpenClaw must not outlive the sidecar that owns it.
    unsafe {
        cmd.pre_exec(|| {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM);
            Ok(())
        });
    }
    cmd
}

fn signal_group(child: &Child, signal: libc::c_int) {
    if let Some(pid) = child.id() {
        // SAFETY: kill(2) on the process group we created for the child.
        unsafe { libc::kill(-(pid as libc::pid_t), signal) };
    }
}

/// Kills what is left of a group whose leader has exited (helpers still holding the port).
fn reap_group(pgid: Option<u32>) {
    if let Some(pid) = pgid {
        // SAFETY: as above; ESRCH (nothing left) is the usual answer and is fine.
        unsafe { libc::kill(-(pid as libc::pid_t), libc::SIGKILL) };
    }
}

/// SIGTERM to the group, SIGKILL after `timeout`. Returns how OpenClaw ended.
async fn terminate(child: &mut Child, timeout: Duration) -> String {
    let pgid = child.id();
    signal_group(child, libc::SIGTERM);
    let ended = match tokio::time::timeout(timeout, child.wait()).await {
        Ok(Ok(status)) => format!("exited ({status})"),
        Ok(Err(e)) => format!("could not be waited for ({e})"),
        Err(_) => {
            tracing::warn!(timeout_secs = timeout.as_secs(), "OpenClaw outlasted the stop timeout; killing it");
            signal_group(child, libc::SIGKILL);
            let _ = child.wait().await;
            "was killed after the stop timeout".to_string()
        }
    };
    reap_group(pgid);
    ended
}

/// Returns once the flag is true (or its sender is gone), holding no borrow of it.
pub async fn until_set(flag: &mut watch::Receiver<bool>) {
    let _ = flag.wait_for(|set| *set).await;
}

/// Runs until `shutdown` turns true, then stops OpenClaw and returns.
pub async fn run(settings: Settings, stage: watch::Sender<Stage>, mut shutdown: watch::Receiver<bool>) {
    let mut backoff = FIRST_BACKOFF;
    let mut start = 0u32;
    loop {
        if *shutdown.borrow() {
            break;
        }
        start += 1;
        let _ = stage.send(Stage::Preparing);
        let spawned = match write_config(&settings).await {
            Ok(_) => openclaw_command(&settings).spawn().map_err(|e| format!("could not be started ({e})")),
            Err(e) => Err(format!("could not get its config ({e})")),
        };
        let exit = match spawned {
            Ok(mut child) => {
                let _ = stage.send(Stage::Starting { start });
                tracing::info!(start, pid = child.id(), "OpenClaw started");
                let began = Instant::now();
                let pgid = child.id();
                tokio::select! {
                    status = child.wait() => {
                        reap_group(pgid);
                        if began.elapsed() >= HEALTHY_RUN {
                            backoff = FIRST_BACKOFF;
                        }
                        match status {
                            Ok(status) => format!("exited ({status})"),
                            Err(e) => format!("could not be waited for ({e})"),
                        }
                    }
                    _ = crate::supervisor::until_set(&mut shutdown) => {
                        let _ = stage.send(Stage::Stopping);
                        let ended = terminate(&mut child, settings.stop_timeout).await;
                        tracing::info!(how = %ended, "OpenClaw stopped");
                        break;
                    }
                }
            }
            Err(e) => e,
        };
        tracing::warn!(start, exit = %exit, delay_secs = backoff.as_secs(), "OpenClaw is down; restarting it");
        let _ = stage.send(Stage::Restarting { start, exit, delay_secs: backoff.as_secs() });
        tokio::select! {
            _ = tokio::time::sleep(backoff) => {}
            _ = crate::supervisor::until_set(&mut shutdown) => break,
        }
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
    let _ = stage.send(Stage::Stopped);
}
