//! Writes the platform's config keys, then runs OpenClaw and keeps it running: a crash is
//! followed by a restart after a growing pause, and a stop (SIGTERM to the sidecar) becomes
//! SIGTERM to OpenClaw's whole process group, then SIGKILL if it outlasts the stop timeout.
//! A [`Pause`] (a backup being restored) stops OpenClaw the same way and keeps it stopped, with
//! the sidecar still serving, until the pause ends; then OpenClaw starts again on the new state.

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
    Starting {
        start: u32,
    },
    Restarting {
        start: u32,
        exit: String,
        delay_secs: u64,
    },
    Stopping,
    /// Stopped for a [`Pause`] (a restore), and started again when it ends.
    Paused,
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
            Self::Paused => "OpenClaw is paused while a backup is restored".into(),
            Self::Stopped => "OpenClaw is stopped".into(),
        }
    }

    /// OpenClaw is down on purpose (readiness then says so without asking it).
    pub fn stopping(&self) -> bool {
        matches!(self, Self::Stopping | Self::Paused | Self::Stopped)
    }
}

/// The sidecar's hold on OpenClaw while a backup is restored: one restore at a time
/// ([`Pause::begin`]), OpenClaw stopped cleanly for it ([`Restoring::pause`]) and started again
/// when the [`Restoring`] is dropped, whatever happened in between.
pub struct Pause {
    requested: watch::Sender<bool>,
    one: tokio::sync::Mutex<()>,
    /// How long OpenClaw may take to be down (the stop timeout, and some).
    within: Duration,
}

/// A restore under way; dropping it lets OpenClaw run again.
pub struct Restoring<'a> {
    pause: &'a Pause,
    _one: tokio::sync::MutexGuard<'a, ()>,
}

impl Pause {
    /// The pause, and the receiver [`run`] watches.
    pub fn new(within: Duration) -> (Self, watch::Receiver<bool>) {
        let (requested, watched) = watch::channel(false);
        (Self { requested, one: tokio::sync::Mutex::new(()), within }, watched)
    }

    /// `None`: another restore is under way.
    pub fn begin(&self) -> Option<Restoring<'_>> {
        let one = self.one.try_lock().ok()?;
        Some(Restoring { pause: self, _one: one })
    }
}

impl Restoring<'_> {
    /// Stops OpenClaw and waits until the supervisor says it is down (`stage` is
    /// [`Stage::Paused`]); `false` if that did not happen in time.
    pub async fn pause(&mut self, stage: &watch::Receiver<Stage>) -> bool {
        self.pause.requested.send_replace(true);
        let mut stage = stage.clone();
        matches!(tokio::time::timeout(self.pause.within, stage.wait_for(|s| *s == Stage::Paused)).await, Ok(Ok(_)))
    }
}

impl Drop for Restoring<'_> {
    fn drop(&mut self) {
        // Only a pause that was asked for is ended (the supervisor sees no change otherwise).
        self.pause.requested.send_if_modified(|paused| std::mem::replace(paused, false));
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

async fn prepare_tmp_dir(settings: &Settings) -> std::io::Result<()> {
    let tmp = settings.tmp_dir.clone();
    tokio::task::spawn_blocking(move || crate::tmp_dir::prepare(&tmp, crate::tmp_dir::COMPILE_CACHE_LIMIT))
        .await
        .map_err(std::io::Error::other)?
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
        .env("TMPDIR", &settings.tmp_dir)
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

/// Returns once the flag is `want`; never, once its sender is gone (a pause nobody can end or
/// ask for again must not spin the loop).
async fn until_is(flag: &mut watch::Receiver<bool>, want: bool) {
    if flag.wait_for(|set| *set == want).await.is_err() {
        std::future::pending::<()>().await;
    }
}

/// Runs until `shutdown` turns true, then stops OpenClaw and returns. While `paused` is true
/// OpenClaw is kept stopped (see [`Pause`]).
pub async fn run(
    settings: Settings,
    stage: watch::Sender<Stage>,
    mut shutdown: watch::Receiver<bool>,
    mut paused: watch::Receiver<bool>,
) {
    let mut backoff = FIRST_BACKOFF;
    let mut start = 0u32;
    loop {
        if *shutdown.borrow() {
            break;
        }
        if *paused.borrow() {
            let _ = stage.send(Stage::Paused);
            tracing::info!("OpenClaw is paused for a restore");
            tokio::select! {
                _ = until_is(&mut paused, false) => {}
                _ = crate::supervisor::until_set(&mut shutdown) => break,
            }
            // A fresh start on the restored state, not a crash.
            backoff = FIRST_BACKOFF;
            continue;
        }
        start += 1;
        let _ = stage.send(Stage::Preparing);
        let spawned = match (write_config(&settings).await, prepare_tmp_dir(&settings).await) {
            (Ok(_), Ok(())) => openclaw_command(&settings).spawn().map_err(|e| format!("could not be started ({e})")),
            (Err(e), _) => Err(format!("could not get its config ({e})")),
            (_, Err(e)) => Err(format!("could not get its temporary directory ({e})")),
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
                    _ = until_is(&mut paused, true) => {
                        let _ = stage.send(Stage::Stopping);
                        let ended = terminate(&mut child, settings.stop_timeout).await;
                        tracing::info!(how = %ended, "OpenClaw stopped for a restore");
                        continue;
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
            _ = until_is(&mut paused, true) => continue,
        }
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
    let _ = stage.send(Stage::Stopped);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Settings whose "node" is `sh` running `script`: a child that records its pid and sleeps.
    fn settings(dir: &Path, script: &Path) -> Settings {
        Settings {
            listen: "127.0.0.1:1".parse().unwrap(),
            openclaw_port: 2,
            state_dir: dir.join("state"),
            home_dir: dir.join("home"),
            tmp_dir: dir.join("tmp"),
            node: PathBuf::from("/bin/sh"),
            openclaw: script.to_path_buf(),
            heap_mb: 256,
            max_connections: 1,
            stop_timeout: Duration::from_secs(5),
            openclaw_log_file: None,
            plugin_paths: Vec::new(),
            secret: crate::secret::AgentSecret::parse(&"s".repeat(32)).unwrap(),
            gateway_token: "t".repeat(16),
            llm_base_url: "http://127.0.0.1:3/v1".into(),
            llm_api: "openai-completions".into(),
            llm_model: "m".into(),
            llm_credential: "c".into(),
        }
    }

    fn alive(pid: i32) -> bool {
        // SAFETY: signal 0 only checks that the process exists.
        unsafe { libc::kill(pid, 0) == 0 }
    }

    async fn pid_in(file: &Path) -> i32 {
        for _ in 0..200 {
            if let Ok(text) = std::fs::read_to_string(file)
                && let Ok(pid) = text.trim().parse()
            {
                return pid;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        panic!("the child never started");
    }

    #[tokio::test]
    async fn a_pause_stops_openclaw_cleanly_keeps_it_down_and_starts_it_again() {
        let dir = tempfile::tempdir().unwrap();
        let pid_file = dir.path().join("pid");
        let script = dir.path().join("openclaw.sh");
        std::fs::write(&script, format!("echo $$ > {}\nexec sleep 60\n", pid_file.display())).unwrap();
        let (stage_tx, mut stage) = watch::channel(Stage::Preparing);
        let (shutdown_tx, shutdown) = watch::channel(false);
        let (pause, paused) = Pause::new(Duration::from_secs(10));
        let supervisor = tokio::spawn(run(settings(dir.path(), &script), stage_tx, shutdown, paused));
        let first = pid_in(&pid_file).await;
        std::fs::remove_file(&pid_file).unwrap();

        let mut restoring = pause.begin().expect("the first restore");
        assert!(pause.begin().is_none(), "one restore at a time");
        assert!(restoring.pause(&stage).await, "OpenClaw went down");
        assert!(!alive(first), "the child was stopped");
        assert!(stage.borrow().stopping(), "readiness says not ready while paused");
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert!(!pid_file.exists(), "nothing starts while paused");
        assert_eq!(*stage.borrow_and_update(), Stage::Paused);

        drop(restoring);
        let second = pid_in(&pid_file).await;
        assert_ne!(first, second);
        assert!(alive(second));
        stage.wait_for(|s| matches!(s, Stage::Starting { start: 2 })).await.unwrap();
        assert!(pause.begin().is_some(), "the next restore may begin");

        shutdown_tx.send(true).unwrap();
        supervisor.await.unwrap();
        assert!(!alive(second), "a stop still stops it");
    }
}
