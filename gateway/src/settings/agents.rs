//! The agents' flags: which provider runs them and how, the model they are told to call, and
//! the timings of the relay's links to them.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use provisioner::local::{CrashLimit, Support};

use crate::config::{AgentArgs, AgentProvider, ServeArgs};
use crate::lifecycle::IdlePolicy;
use crate::llm::{LlmApi, UpstreamsConfig};
use crate::machines::Limits;
use crate::relay::{AgentTimings, Timings};
use crate::settings::FlyAgents;

pub struct Agents {
    pub runner: Runner,
    pub model: AgentModel,
    pub limits: Limits,
}

pub enum Runner {
    Fake(FakeAgents),
    Local(LocalAgents),
    Fly(FlyAgents),
}

pub struct FakeAgents {
    /// Benchmarks: every frame is echoed back as a `chat` event.
    pub echo: bool,
    /// Benchmarks: every user's agent is this running OpenClaw-speaking WebSocket.
    pub external_url: Option<String>,
}

pub struct LocalAgents {
    /// The `roost` binary agents are launched through (`roost agent-exec`); `None`: this one.
    pub exec_bin: Option<PathBuf>,
    pub data_dir: PathBuf,
    pub runtime_dir: PathBuf,
    pub openclaw_bin: Option<PathBuf>,
    pub node_bin: Option<PathBuf>,
    pub ready_timeout: Duration,
    /// When a crashing agent stops being restarted (`--agent-crash-limit`, `--agent-crash-window`).
    pub crash_limit: CrashLimit,
    /// Tests: the Landlock support to act on instead of the kernel's.
    pub assumed_support: Option<Support>,
    pub unsandboxed_accepted: bool,
    /// What agents must never read: the data dir, the secret key, a local database file.
    pub protected: Vec<PathBuf>,
}

/// The model agents call, always through Roost's metered proxy.
pub struct AgentModel {
    pub base_url: String,
    /// OpenClaw's `api` value.
    pub api: &'static str,
    pub model: String,
}

impl Runner {
    /// As `--agent-provider` names it, for the start line.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Fake(_) => "Fake",
            Self::Local(_) => "Local",
            Self::Fly(_) => "Fly",
        }
    }
}

/// `fly` is `Some` exactly when `--agent-provider fly` was given and its flags checked out.
pub(super) fn agents(
    args: &ServeArgs,
    upstreams: &UpstreamsConfig,
    bound: SocketAddr,
    public_origin: &str,
    fly: Option<FlyAgents>,
) -> Agents {
    let agents = &args.agents;
    // Agents on this host reach Roost on loopback; Fly machines only by its public origin.
    let llm_origin = if fly.is_some() { public_origin.to_string() } else { internal_origin(bound) };
    let runner = match (agents.agent_provider, fly) {
        (AgentProvider::Fly, Some(fly)) => Runner::Fly(fly),
        // Settings::from_args returns its problems before this when the fly flags did not check out.
        (AgentProvider::Fly, None) => unreachable!("the --fly-* flags are checked before agents are built"),
        (AgentProvider::Fake, _) => {
            Runner::Fake(FakeAgents { echo: agents.fake_agent_echo, external_url: agents.fake_agent_url.clone() })
        }
        (AgentProvider::Local, _) => {
            let data_dir = args.db.data_dir.clone();
            let mut protected = vec![data_dir.clone(), data_dir.join("secret.key")];
            let database = args.db.database_location();
            if !database.starts_with("libsql:") {
                protected.push(PathBuf::from(database));
            }
            Runner::Local(LocalAgents {
                exec_bin: agents.agent_exec_bin.clone(),
                runtime_dir: agents.runtime_dir.clone().unwrap_or_else(|| data_dir.join("runtime")),
                data_dir,
                openclaw_bin: agents.openclaw_bin.clone(),
                node_bin: agents.node_bin.clone(),
                ready_timeout: Duration::from_secs(agents.agent_ready_timeout_secs),
                crash_limit: crash_limit(agents),
                assumed_support: agents.assume_landlock_abi.map(|abi| match abi {
                    0 => Support::Missing,
                    abi => Support::Landlock { abi },
                }),
                unsandboxed_accepted: agents.unsandboxed_agents,
                protected,
            })
        }
    };
    // Simulated agents cost next to nothing (and the benchmarks' share one upstream): no default
    // cap for them; real ones are capped by what the host's memory holds.
    // Fly machines take no memory here; what they cost is for `--max-agents` to bound.
    let default_cap = match runner {
        Runner::Fake(_) | Runner::Fly(_) => usize::MAX,
        Runner::Local(_) => crate::lifecycle::default_max_agents(),
    };
    let limits = Limits {
        max_agents: agents.max_agents.unwrap_or(default_cap),
        idle: IdlePolicy { timeout: crate::lifecycle::parse_duration(&agents.agent_idle_timeout).ok().flatten() },
        // A lease renewed every third of its life needs a life of at least a few ticks.
        lease_ttl: std::time::Duration::from_millis(agents.agent_lease_ttl_ms.max(300)),
    };
    Agents { runner, model: agent_model(upstreams, &llm_origin), limits }
}

/// The flags were checked already (at least one crash, a window over 0); the fallbacks are
/// never used.
fn crash_limit(agents: &AgentArgs) -> CrashLimit {
    let window = crate::lifecycle::parse_duration(&agents.agent_crash_window).ok().flatten();
    CrashLimit { crashes: agents.agent_crash_limit.max(1), window: window.unwrap_or(CrashLimit::DEFAULT.window) }
}

fn agent_model(upstreams: &UpstreamsConfig, internal_origin: &str) -> AgentModel {
    let (base_url, api) = match upstreams.preferred_api() {
        Some(LlmApi::Anthropic) => (format!("{internal_origin}/llm/anthropic"), "anthropic-messages"),
        _ => (format!("{internal_origin}/llm/openai/v1"), "openai-completions"),
    };
    if upstreams.preferred_api().is_some() && upstreams.default_model.is_none() {
        tracing::warn!("no --llm-model (ROOST_LLM_MODEL) is set; agents will ask the provider for model \"default\"");
    }
    AgentModel { base_url, api, model: upstreams.default_model.clone().unwrap_or_else(|| "default".into()) }
}

/// Agents run on this host, so they reach Roost on loopback whatever address it listens on.
fn internal_origin(bound: SocketAddr) -> String {
    if bound.ip().is_unspecified() || bound.ip().is_loopback() {
        format!("http://127.0.0.1:{}", bound.port())
    } else {
        format!("http://{bound}")
    }
}

pub(super) fn relay_timings(agents: &AgentArgs) -> Timings {
    let secs = Duration::from_secs;
    Timings {
        link_idle: secs(agents.agent_link_idle_secs),
        browser_ping: secs(agents.browser_ping_secs.max(1)),
        browser_pong_deadline: secs(agents.browser_pong_deadline_secs),
        agent: AgentTimings {
            ping: secs(agents.agent_ping_secs.max(1)),
            silence: secs(agents.agent_silence_secs),
            write: secs(10),
        },
        credential_recheck: secs(agents.credential_recheck_secs.max(1)),
    }
}
