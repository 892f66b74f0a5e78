//! The command line and environment an agent starts with: its config written to its state dir,
//! its sandbox policy, and nothing of Roost's environment.

use std::path::Path;
use std::process::Stdio;

use tokio::process::Command;

use super::config::{self, LLM_CREDENTIAL_ENV};
use super::sandbox::{AgentPaths, Policy};
use super::{Launch, Runtime};
use crate::{AgentSpec, ProvisionError};

pub const LOG_FILE: &str = "agent.log";
/// Node's old-generation heap cap for each agent (`--max-old-space-size`, in MiB): a runaway
/// agent hits its own limit and crashes (counted by the crash limit) before it takes the host's
/// memory. A real agent uses about 1.2 GB resident, most of it outside this heap.
pub const NODE_HEAP_LIMIT_MB: u32 = 768;

pub async fn agent_command(
    spec: &AgentSpec,
    dir: &Path,
    runtime: &Runtime,
    launch: &Launch,
    port: u16,
) -> Result<Command, ProvisionError> {
    // The config lives in the agent's own state dir: OpenClaw rewrites it (config.patch).
    let config_path = dir.join("state/openclaw.json");
    let plugins: Vec<_> = runtime.discord_plugin().into_iter().collect();
    for plugin in &plugins {
        let (state, plugin) = (dir.join("state"), plugin.clone());
        tokio::task::spawn_blocking(move || roost_agent::config::write_discord_install_record(&state, &plugin))
            .await
            .map_err(|e| ProvisionError::Start(format!("writing the Discord plugin's record failed: {e}")))??;
    }
    let platform = config::render(port, &spec.llm, &dir.join("state/logs/openclaw.log"), &plugins);
    let previous = tokio::fs::read(&config_path).await.ok().and_then(|b| json5_lenient(&b));
    let config = config::next_config(previous, platform);
    tokio::fs::write(&config_path, serde_json::to_vec_pretty(&config).expect("json")).await?;
    let paths =
        AgentPaths { agent_dir: dir, users_dir: dir.parent().unwrap_or(dir), protected: &launch.protected, runtime };
    let policy = Policy::for_agent(&launch.sandbox, &paths, port)
        .map_err(|e| ProvisionError::Start(format!("the agent's sandbox cannot be set up: {e}")))?;
    let log = std::fs::OpenOptions::new().create(true).append(true).open(dir.join(LOG_FILE))?;
    let node_dir = runtime.node.parent().map(Path::to_path_buf).unwrap_or_default();
    // `roost agent-exec` confines itself with the policy, then execs Node in its place.
    let mut cmd = Command::new(&launch.helper);
    cmd.arg("agent-exec")
        .arg(serde_json::to_string(&policy).expect("a policy serialises"))
        .arg("--")
        .arg(&runtime.node)
        // A command-line flag, not NODE_OPTIONS: the environment stays the agent's own, and
        // OpenClaw's self-respawns pass `process.execArgv` on.
        .arg(format!("--max-old-space-size={NODE_HEAP_LIMIT_MB}"))
        .arg(&runtime.openclaw)
        .args(["gateway", "run"])
        // A clean environment: the agent runs untrusted code and must see no platform secret.
        .env_clear()
        .env("PATH", format!("{}:/usr/local/bin:/usr/bin:/bin", node_dir.display()))
        .env("HOME", dir.join("home"))
        .env("TMPDIR", dir.join("tmp"))
        .env("LANG", "C.UTF-8")
        .env("OPENCLAW_STATE_DIR", dir.join("state"))
        .env("OPENCLAW_CONFIG_PATH", &config_path)
        .env("OPENCLAW_GATEWAY_TOKEN", &spec.gateway_token)
        .env(LLM_CREDENTIAL_ENV, &spec.llm.credential)
        // OpenClaw raises its children's OOM score by writing /proc/self, which agents may
        // not; the helper raises the whole agent's instead (see `Limits::oom_score_adj`).
        .env("OPENCLAW_CHILD_OOM_SCORE_ADJ", "0")
        .envs(launch.env.iter().map(|(k, v)| (k, v)))
        .current_dir(dir.join("home"))
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .kill_on_drop(true);
    // SAFETY: prctl is async-signal-safe; it only asks the kernel to SIGTERM the agent if
    // Roost dies without stopping it, so agents never outlive the process that owns them.
    unsafe {
        cmd.pre_exec(|| {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM);
            Ok(())
        });
    }
    Ok(cmd)
}

/// OpenClaw writes its config back as plain JSON; anything else (hand-edited JSON5) is not
/// carried over.
fn json5_lenient(bytes: &[u8]) -> Option<serde_json::Value> {
    serde_json::from_slice(bytes).ok()
}

/// The last lines of an agent's own log, for the server's log when it exits unexpectedly.
pub fn log_tail(dir: &Path, lines: usize) -> String {
    let text = std::fs::read(dir.join(LOG_FILE)).unwrap_or_default();
    let start = text.len().saturating_sub(8 * 1024);
    let text = String::from_utf8_lossy(&text[start..]);
    let tail: Vec<&str> = text.lines().rev().take(lines).collect();
    tail.into_iter().rev().collect::<Vec<_>>().join(" | ")
}
