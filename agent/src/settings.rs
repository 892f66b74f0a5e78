//! Flags and environment → one validated [`Settings`]. On Fly everything comes from the
//! environment: the image's defaults, the machine's `env` and the app's secrets.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;

use crate::secret::AgentSecret;

#[derive(Parser, Debug)]
#[command(name = "roost-agent", about = "Runs OpenClaw on this machine and admits only Roost to it")]
struct Args {
    /// Where Roost connects: the private network (`[::]` takes IPv6 6PN and IPv4 alike).
    #[arg(long, env = "ROOST_AGENT_LISTEN", default_value = "[::]:8080")]
    listen: SocketAddr,
    /// OpenClaw's port on 127.0.0.1.
    #[arg(long, env = "ROOST_AGENT_OPENCLAW_PORT", default_value_t = 18789)]
    openclaw_port: u16,
    /// OpenClaw's state dir (on the volume); `openclaw.json` lives in it.
    #[arg(long, env = "ROOST_AGENT_STATE_DIR", default_value = "/data/openclaw")]
    state_dir: PathBuf,
    /// OpenClaw's HOME (on the volume too: its workspace defaults to it).
    #[arg(long, env = "ROOST_AGENT_HOME", default_value = "/data/home")]
    home_dir: PathBuf,
    /// OpenClaw's TMPDIR (on the volume: Node's compile cache in it makes a wake faster);
    /// emptied of all else before each start.
    #[arg(long, env = "ROOST_AGENT_TMP_DIR", default_value = "/data/tmp")]
    tmp_dir: PathBuf,
    #[arg(long, env = "ROOST_AGENT_NODE", default_value = "node")]
    node: PathBuf,
    #[arg(long, env = "ROOST_AGENT_OPENCLAW", default_value = "/app/node_modules/openclaw/openclaw.mjs")]
    openclaw: PathBuf,
    /// Node's old-generation heap cap, in MiB (`NODE_OPTIONS=--max-old-space-size`).
    #[arg(long, env = "ROOST_AGENT_HEAP_MB", default_value_t = 1536)]
    heap_mb: u32,
    /// Connections held open at once; more are closed at once.
    #[arg(long, env = "ROOST_AGENT_MAX_CONNECTIONS", default_value_t = 256)]
    max_connections: usize,
    /// How long OpenClaw may take to exit after SIGTERM before it is killed. Fly's stop timeout
    /// for agent machines is 30 s, so the default leaves time to spare.
    #[arg(long, env = "ROOST_AGENT_STOP_TIMEOUT_SECS", default_value_t = 20)]
    stop_timeout_secs: u64,
    /// OpenClaw's log file (default: OpenClaw's own choice; stdout has the same lines).
    #[arg(long, env = "ROOST_AGENT_OPENCLAW_LOG_FILE")]
    openclaw_log_file: Option<PathBuf>,
    /// Plugin directories OpenClaw loads (`plugins.load.paths`): the image's pinned Discord plugin.
    #[arg(long, env = "ROOST_AGENT_PLUGIN_PATHS", value_delimiter = ',')]
    plugin_paths: Vec<PathBuf>,
    #[arg(long, env = "ROOST_AGENT_SECRET", hide_env_values = true)]
    secret: String,
    #[arg(long, env = "OPENCLAW_GATEWAY_TOKEN", hide_env_values = true)]
    gateway_token: String,
    #[arg(long, env = "ROOST_LLM_BASE_URL")]
    llm_base_url: String,
    #[arg(long, env = "ROOST_LLM_API")]
    llm_api: String,
    #[arg(long, env = "ROOST_LLM_MODEL")]
    llm_model: String,
    #[arg(long, env = "ROOST_LLM_CREDENTIAL", hide_env_values = true)]
    llm_credential: String,
}

#[derive(Debug, Clone)]
pub struct Settings {
    pub listen: SocketAddr,
    pub openclaw_port: u16,
    pub state_dir: PathBuf,
    pub home_dir: PathBuf,
    pub tmp_dir: PathBuf,
    pub node: PathBuf,
    pub openclaw: PathBuf,
    pub heap_mb: u32,
    pub max_connections: usize,
    pub stop_timeout: Duration,
    pub openclaw_log_file: Option<PathBuf>,
    pub plugin_paths: Vec<PathBuf>,
    pub secret: AgentSecret,
    pub gateway_token: String,
    pub llm_base_url: String,
    pub llm_api: String,
    pub llm_model: String,
    pub llm_credential: String,
}

impl Settings {
    pub fn from_env() -> Result<Self, String> {
        Self::from_args(Args::parse())
    }

    fn from_args(a: Args) -> Result<Self, String> {
        let mut problems = Vec::new();
        let secret = AgentSecret::parse(&a.secret).map_err(|e| problems.push(e)).ok();
        if a.gateway_token.len() < 16 {
            problems.push("OPENCLAW_GATEWAY_TOKEN must be at least 16 characters".to_string());
        }
        for (name, value) in [
            ("ROOST_LLM_BASE_URL", &a.llm_base_url),
            ("ROOST_LLM_API", &a.llm_api),
            ("ROOST_LLM_MODEL", &a.llm_model),
            ("ROOST_LLM_CREDENTIAL", &a.llm_credential),
        ] {
            if value.trim().is_empty() {
                problems.push(format!("{name} must not be empty"));
            }
        }
        if !a.llm_base_url.starts_with("http://") && !a.llm_base_url.starts_with("https://") {
            problems.push("ROOST_LLM_BASE_URL must be an http:// or https:// URL".to_string());
        }
        if a.heap_mb < 256 {
            problems.push("ROOST_AGENT_HEAP_MB must be at least 256".to_string());
        }
        if a.max_connections == 0 {
            problems.push("ROOST_AGENT_MAX_CONNECTIONS must be at least 1".to_string());
        }
        if a.openclaw_port == 0 || a.openclaw_port == a.listen.port() {
            problems.push("ROOST_AGENT_OPENCLAW_PORT must be set and differ from the listen port".to_string());
        }
        match secret {
            Some(secret) if problems.is_empty() => Ok(Self {
                listen: a.listen,
                openclaw_port: a.openclaw_port,
                state_dir: a.state_dir,
                home_dir: a.home_dir,
                tmp_dir: a.tmp_dir,
                node: a.node,
                openclaw: a.openclaw,
                heap_mb: a.heap_mb,
                max_connections: a.max_connections,
                stop_timeout: Duration::from_secs(a.stop_timeout_secs),
                openclaw_log_file: a.openclaw_log_file,
                plugin_paths: a.plugin_paths,
                secret,
                gateway_token: a.gateway_token,
                llm_base_url: a.llm_base_url,
                llm_api: a.llm_api,
                llm_model: a.llm_model,
                llm_credential: a.llm_credential,
            }),
            _ => Err(problems.join("; ")),
        }
    }

    pub fn config_path(&self) -> PathBuf {
        self.state_dir.join("openclaw.json")
    }
}
