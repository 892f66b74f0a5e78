//! Command-line flags; each one can also be set from a `ROOST_*` environment variable.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::secret::SecretString;

#[derive(Debug, Parser)]
#[command(name = "roost", version, about = "A personal AI agent for every user")]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,

    /// Log format: human-readable text or one JSON object per line.
    #[arg(long, env = "ROOST_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text, global = true)]
    pub log_format: LogFormat,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the gateway (migrates the database first).
    Serve(Box<ServeArgs>),
    /// Apply pending database migrations and exit.
    Migrate(DbArgs),
    /// One round of the Fly reconciler (`--agent-provider fly`; takes `serve`'s flags), then exit.
    Reconcile(Box<ServeArgs>),
    /// Operator tasks: list users, revoke sessions, delete accounts.
    Admin(AdminArgs),
    /// Internal: confine this process with a sandbox policy, then exec an agent.
    #[command(hide = true)]
    AgentExec(AgentExecArgs),
}

#[derive(Debug, Args)]
pub struct AgentExecArgs {
    /// The policy, as JSON (built by `roost serve`).
    pub policy: String,
    /// The program to exec once confined, and its arguments (after `--`).
    #[arg(last = true, required = true, num_args = 1..)]
    pub command: Vec<std::ffi::OsString>,
}

#[derive(Debug, Clone, Args)]
pub struct DbArgs {
    /// Directory for the database file and per-user state.
    #[arg(long, env = "ROOST_DATA_DIR", default_value = "data")]
    pub data_dir: PathBuf,

    /// A local libSQL file path, or a `libsql://` URL for Turso. Default: `<data-dir>/roost.db`.
    #[arg(long, env = "ROOST_DATABASE")]
    pub database: Option<String>,

    /// Auth token for a remote (`libsql://`) database.
    #[arg(long, env = "ROOST_DATABASE_TOKEN", hide_env_values = true)]
    pub database_token: Option<String>,
}

impl DbArgs {
    pub fn database_location(&self) -> String {
        self.database.clone().unwrap_or_else(|| self.data_dir.join("roost.db").to_string_lossy().into_owned())
    }
}

#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    #[command(flatten)]
    pub db: DbArgs,

    /// Address to listen on.
    #[arg(long, env = "ROOST_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,

    /// The URL users open, e.g. `https://roost.example.com`. Default: `http://<listen>`.
    #[arg(long, env = "ROOST_PUBLIC_ORIGIN")]
    pub public_origin: Option<String>,

    /// Further origins allowed to make cookie-authenticated requests (comma-separated).
    #[arg(long, env = "ROOST_ALLOWED_ORIGINS", value_delimiter = ',')]
    pub allowed_origins: Vec<String>,

    /// 32-byte server secret as 64 hex characters. Default: generated once into `<data-dir>/secret.key`.
    #[arg(long, env = "ROOST_SECRET_KEY", hide_env_values = true)]
    pub secret_key: Option<String>,

    /// A session ends after this many hours without use.
    #[arg(long, env = "ROOST_SESSION_IDLE_HOURS", default_value_t = 168)]
    pub session_idle_hours: u64,

    /// A session ends this many days after login, used or not.
    #[arg(long, env = "ROOST_SESSION_MAX_DAYS", default_value_t = 30)]
    pub session_max_days: u64,

    /// Login and signup attempts allowed per client IP per minute.
    #[arg(long, env = "ROOST_AUTH_RATE_PER_IP", default_value_t = 20)]
    pub auth_rate_per_ip: u32,

    /// Failed logins allowed per email from one client IP per minute.
    #[arg(long, env = "ROOST_AUTH_RATE_PER_EMAIL", default_value_t = 5)]
    pub auth_rate_per_email: u32,

    /// Password hashes (sign-ups, logins) run on this many threads. Default: one per core, up to 4.
    #[arg(long, hide = true)]
    pub password_hash_workers: Option<usize>,

    /// Password hashes that may wait for a thread; past that a sign-up or login gets 503.
    #[arg(long, hide = true, default_value_t = crate::auth::password::DEFAULT_QUEUE)]
    pub password_hash_queue: usize,

    /// Memory all users' chat replay buffers may hold together, in MiB; past it the oldest
    /// events go first (their users get `roost.gap` on resume and reload history). 32 MiB keeps
    /// 1,000 users streaming at once within 128 KiB each, sockets included.
    #[arg(long, env = "ROOST_REPLAY_MEMORY_LIMIT_MIB", default_value_t = 32)]
    pub replay_memory_limit_mib: u64,

    /// Model calls allowed per user per minute through `/llm/*`.
    #[arg(long, env = "ROOST_LLM_RATE_PER_USER", default_value_t = 240)]
    pub llm_rate_per_user: u32,

    /// Header holding the real client IP when behind a proxy (e.g. `Fly-Client-IP`).
    #[arg(long, env = "ROOST_CLIENT_IP_HEADER")]
    pub client_ip_header: Option<String>,

    /// Turn off local email/password accounts (Clerk only).
    #[arg(long, env = "ROOST_DISABLE_LOCAL_ACCOUNTS")]
    pub disable_local_accounts: bool,

    /// Who may create an account (local or Clerk): anyone, holders of an invite code from an
    /// admin, or nobody. Default: `open` when listening on a loopback address, else `invite`.
    #[arg(long, env = "ROOST_SIGNUPS", value_enum)]
    pub signups: Option<SignupPolicy>,

    #[command(flatten)]
    pub http: HttpArgs,

    #[command(flatten)]
    pub mail: MailArgs,

    #[command(flatten)]
    pub clerk: ClerkArgs,

    #[command(flatten)]
    pub agents: AgentArgs,

    #[command(flatten)]
    pub llm: LlmArgs,

    #[command(flatten)]
    pub stripe: StripeArgs,

    #[command(flatten)]
    pub integrations: IntegrationArgs,

    #[command(flatten)]
    pub tasks: TaskArgs,
}

/// The task API (`/api/v1/tasks`) and its completion webhooks.
#[derive(Debug, Clone, Args)]
pub struct TaskArgs {
    /// Let task webhooks go to loopback, private, link-local and other internal addresses (for
    /// tests and private networks). Off: they are refused, after DNS and on every attempt.
    #[arg(long, env = "ROOST_ALLOW_PRIVATE_WEBHOOKS")]
    pub allow_private_webhooks: bool,

    /// Tasks each API token may submit per minute.
    #[arg(long, env = "ROOST_TASK_RATE_PER_TOKEN", default_value_t = 30)]
    pub task_rate_per_token: u32,

    /// Tasks each API token may have queued or running at once.
    #[arg(long, env = "ROOST_TASK_CONCURRENCY_PER_TOKEN", default_value_t = 4)]
    pub task_concurrency_per_token: u32,

    /// A task still running after this long is cancelled and failed.
    #[arg(long, env = "ROOST_TASK_TIMEOUT_SECS", default_value_t = 1800)]
    pub task_timeout_secs: u64,
}

/// Telegram and Discord bots connected to agents.
#[derive(Debug, Clone, Args)]
pub struct IntegrationArgs {
    /// Telegram Bot API root (no `/bot<token>`); agents' `apiRoot` follows it. Tests point it at a fake.
    #[arg(long, env = "ROOST_TELEGRAM_API_BASE", default_value = "https://api.telegram.org")]
    pub telegram_api_base: String,

    /// Discord REST API base, with its version.
    #[arg(long, env = "ROOST_DISCORD_API_BASE", default_value = "https://discord.com/api/v10")]
    pub discord_api_base: String,

    /// Refused bot token checks each user may cause per hour; past it their checks wait (Discord
    /// bans an IP after 10 000 refused requests in 10 minutes).
    #[arg(long, env = "ROOST_BOT_CHECK_FAILURES_PER_HOUR", default_value_t = 20)]
    pub bot_check_failures_per_hour: u32,
}

/// Outgoing mail, for "forgot password" links. Off without `--smtp-url`.
#[derive(Debug, Clone, Args)]
pub struct MailArgs {
    /// SMTP server, e.g. `smtps://user:pass@smtp.example.com` (TLS), `smtp://…?tls=required`
    /// (STARTTLS) or `smtp://127.0.0.1:25` (plain, for a local relay).
    #[arg(long, env = "ROOST_SMTP_URL", hide_env_values = true)]
    pub smtp_url: Option<SecretString>,

    /// The sender of Roost's mail, e.g. `Roost <roost@example.com>`.
    #[arg(long, env = "ROOST_SMTP_FROM")]
    pub smtp_from: Option<String>,

    /// How long one delivery to the SMTP server may take.
    #[arg(long, env = "ROOST_SMTP_TIMEOUT_SECS", default_value_t = 15, hide = true)]
    pub smtp_timeout_secs: u64,
}

/// Connection limits and where `/metrics` is served.
#[derive(Debug, Clone, Args)]
pub struct HttpArgs {
    /// Serve `/metrics` on this separate address (e.g. `127.0.0.1:9090`) instead of the main one.
    #[arg(long, env = "ROOST_METRICS_LISTEN")]
    pub metrics_listen: Option<SocketAddr>,

    /// Bearer token `/metrics` requires. With neither this nor `--metrics-listen`, `/metrics` is off.
    #[arg(long, env = "ROOST_METRICS_TOKEN", hide_env_values = true)]
    pub metrics_token: Option<SecretString>,

    /// Open HTTP connections, WebSockets not counted; when full, the one idle longest is closed.
    #[arg(long, env = "ROOST_MAX_CONNECTIONS", default_value_t = 2048)]
    pub max_connections: usize,

    /// Established WebSockets; further upgrades are answered 503.
    #[arg(long, env = "ROOST_MAX_WEBSOCKETS", default_value_t = 10_000)]
    pub max_websockets: usize,

    /// How long a client may take to send a request's headers, or keep an idle connection open.
    #[arg(long, env = "ROOST_HEADER_READ_TIMEOUT_SECS", default_value_t = 10, hide = true)]
    pub header_read_timeout_secs: u64,
}

#[derive(Debug, Clone, Args)]
pub struct AgentArgs {
    /// Where agents run: `local` (an OpenClaw process per user), `fly` (a Fly.io app, volume and
    /// machine per user; see the `--fly-*` flags) or `fake` (simulated, in-process).
    #[arg(long, env = "ROOST_AGENT_PROVIDER", value_enum, default_value_t = AgentProvider::Local)]
    pub agent_provider: AgentProvider,

    #[command(flatten)]
    pub fly: FlyArgs,

    /// Where Node 24 and OpenClaw are installed on first use. Default: `<data-dir>/runtime`.
    #[arg(long, env = "ROOST_RUNTIME_DIR")]
    pub runtime_dir: Option<PathBuf>,

    /// Use this OpenClaw entry script (`…/openclaw/openclaw.mjs`) instead of installing one.
    #[arg(long, env = "ROOST_OPENCLAW_BIN")]
    pub openclaw_bin: Option<PathBuf>,

    /// The Node 24 binary for `--openclaw-bin`. Default: the runtime's, else `node` on PATH.
    #[arg(long, env = "ROOST_NODE_BIN")]
    pub node_bin: Option<PathBuf>,

    /// How long an agent may take to become ready.
    #[arg(long, env = "ROOST_AGENT_READY_TIMEOUT_SECS", default_value_t = 180)]
    pub agent_ready_timeout_secs: u64,

    /// How long a user's agent link (and its replay buffer) outlives their last socket.
    #[arg(long, env = "ROOST_AGENT_LINK_IDLE_SECS", default_value_t = 120, hide = true)]
    pub agent_link_idle_secs: u64,

    /// Tests: how often Roost pings each browser, and how long it waits for a pong.
    #[arg(long, default_value_t = 25, hide = true)]
    pub browser_ping_secs: u64,
    #[arg(long, default_value_t = 60, hide = true)]
    pub browser_pong_deadline_secs: u64,

    /// Tests: how often Roost pings each agent link, and how long a silent link is kept.
    #[arg(long, default_value_t = 30, hide = true)]
    pub agent_ping_secs: u64,
    #[arg(long, default_value_t = 75, hide = true)]
    pub agent_silence_secs: u64,

    /// Tests: how often the credentials of open sockets are checked against the database
    /// (expired sessions, and revocations by `roost admin` in another process).
    #[arg(long, default_value_t = 5, hide = true)]
    pub credential_recheck_secs: u64,

    /// Run local agents without Landlock when the kernel lacks it, for more than one account.
    /// Agents could then read the server's secret key and database: only for a single-user machine.
    #[arg(long, env = "ROOST_UNSANDBOXED_AGENTS")]
    pub unsandboxed_agents: bool,

    /// The `roost` binary agents are launched through (`roost agent-exec`). Default: this one.
    #[arg(long, env = "ROOST_AGENT_EXEC_BIN", hide = true)]
    pub agent_exec_bin: Option<PathBuf>,

    /// Tests: act as if the kernel offered this Landlock ABI (0: none).
    #[arg(long, hide = true)]
    pub assume_landlock_abi: Option<u8>,

    /// How many agents may run at once; further starts wait in line, and see their place.
    /// Default: what this machine's memory holds at about 1.2 GB per agent (at least 1).
    #[arg(long, env = "ROOST_MAX_AGENTS")]
    pub max_agents: Option<usize>,

    /// Stop an agent after this long unused: no chat open, no run in progress, no model call
    /// (`30m`, `45s`, `2h`; `0` = never).
    #[arg(long, env = "ROOST_AGENT_IDLE_TIMEOUT", default_value = "30m")]
    pub agent_idle_timeout: String,

    /// A local agent that crashes this many times within `--agent-crash-window` is not restarted
    /// again: it stays failed, with the reason, until its user restarts it (at least 1).
    #[arg(long, env = "ROOST_AGENT_CRASH_LIMIT", default_value_t = provisioner::local::CrashLimit::DEFAULT.crashes)]
    pub agent_crash_limit: u32,

    /// The window `--agent-crash-limit` counts crashes in (`10m`, `90s`, `1h`; more than 0).
    #[arg(long, env = "ROOST_AGENT_CRASH_WINDOW", default_value = "10m")]
    pub agent_crash_window: String,

    /// Do not start a user's agent in the background when they log in.
    #[arg(long, env = "ROOST_NO_PREWARM")]
    pub no_prewarm: bool,

    /// Benchmarks: with `--agent-provider fake`, the simulated agents echo every frame back as a
    /// `chat` event instead of chatting.
    #[arg(long, hide = true)]
    pub fake_agent_echo: bool,

    /// Benchmarks: with `--agent-provider fake`, every user's agent is this already running
    /// OpenClaw-speaking WebSocket (e.g. `roost-bench upstream`), instead of an in-process fake.
    #[arg(long, hide = true)]
    pub fake_agent_url: Option<String>,

    /// Tests: how long a user's lifecycle lease lasts unrenewed, in milliseconds (another
    /// instance takes over a dead one's agents this long after it died).
    #[arg(long, env = "ROOST_AGENT_LEASE_TTL_MS", default_value_t = 15_000, hide = true)]
    pub agent_lease_ttl_ms: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SignupPolicy {
    Open,
    Invite,
    Closed,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum AgentProvider {
    Local,
    Fly,
    Fake,
}

/// `--agent-provider fly`: where and how user machines are made on Fly.io.
#[derive(Debug, Clone, Args)]
pub struct FlyArgs {
    /// An org-scoped Fly API token (`fly tokens create org`); app-scoped tokens cannot create apps.
    #[arg(long, env = "ROOST_FLY_API_TOKEN", hide_env_values = true)]
    pub fly_api_token: Option<SecretString>,

    /// The Fly org slug user apps are created in.
    #[arg(long, env = "ROOST_FLY_ORG")]
    pub fly_org: Option<String>,

    /// Regions for user machines, in order of preference, comma-separated (`iad,ord,ams`); a
    /// region without room moves a new machine to the next.
    #[arg(long, env = "ROOST_FLY_REGIONS", value_delimiter = ',')]
    pub fly_regions: Vec<String>,

    /// The agent image, best pinned by digest (`registry/openclaw@sha256:…`).
    #[arg(long, env = "ROOST_FLY_IMAGE")]
    pub fly_image: Option<String>,

    /// The Machines API base URL.
    #[arg(long, env = "ROOST_FLY_API_BASE", default_value = provisioner::fly::DEFAULT_BASE_URL)]
    pub fly_api_base: String,

    /// The agent's WebSocket address; `{machine_id}`, `{app}` and `{region}` are filled in.
    #[arg(long, env = "ROOST_FLY_AGENT_ADDRESS", default_value = provisioner::fly::DEFAULT_AGENT_ADDRESS)]
    pub fly_agent_address: String,

    /// CPU and memory of each user machine: `shared-cpu-Nx` or `performance-Nx`, optionally
    /// `:<MB>` (default 2048 MB).
    #[arg(long, env = "ROOST_FLY_MACHINE_SIZE", default_value = provisioner::fly::DEFAULT_MACHINE_SIZE)]
    pub fly_machine_size: String,
}

#[derive(Debug, Clone, Args)]
pub struct ClerkArgs {
    /// Clerk Frontend API URL; turns on Clerk session tokens (e.g. `https://clerk.example.com`).
    #[arg(long, env = "ROOST_CLERK_ISSUER")]
    pub clerk_issuer: Option<String>,

    /// PEM public key (the PEM text, or a path to a file holding it). Networkless verification.
    #[arg(long, env = "ROOST_CLERK_JWT_KEY", hide_env_values = true)]
    pub clerk_jwt_key: Option<String>,

    /// JWKS URL. Default: `<issuer>/.well-known/jwks.json` when no PEM is given.
    #[arg(long, env = "ROOST_CLERK_JWKS_URL")]
    pub clerk_jwks_url: Option<String>,

    /// Allowed `azp` values (comma-separated). Default: the allowed origins.
    #[arg(long, env = "ROOST_CLERK_AUTHORIZED_PARTIES", value_delimiter = ',')]
    pub clerk_authorized_parties: Vec<String>,

    /// Svix signing secret for `POST /webhooks/clerk` (`whsec_…`).
    #[arg(long, env = "ROOST_CLERK_WEBHOOK_SECRET", hide_env_values = true)]
    pub clerk_webhook_secret: Option<String>,
}

/// The model providers behind `/llm/*`. Their keys stay on the server; agents get a per-user credential.
#[derive(Debug, Clone, Args)]
pub struct LlmArgs {
    /// OpenAI-compatible API base, e.g. `https://api.openai.com/v1` (`/chat/completions` is appended).
    #[arg(long, env = "ROOST_LLM_OPENAI_BASE_URL")]
    pub llm_openai_base_url: Option<String>,

    /// API key for the OpenAI-compatible base URL.
    #[arg(long, env = "ROOST_LLM_OPENAI_API_KEY", hide_env_values = true)]
    pub llm_openai_api_key: Option<SecretString>,

    /// Anthropic API key; turns on `/llm/anthropic/v1/messages`.
    #[arg(long, env = "ROOST_LLM_ANTHROPIC_API_KEY", hide_env_values = true)]
    pub llm_anthropic_api_key: Option<SecretString>,

    /// Anthropic API base (`/v1/messages` is appended).
    #[arg(long, env = "ROOST_LLM_ANTHROPIC_BASE_URL", default_value = "https://api.anthropic.com")]
    pub llm_anthropic_base_url: String,

    /// The model id agents use by default, e.g. `gpt-4o-mini`.
    #[arg(long, env = "ROOST_LLM_MODEL")]
    pub llm_model: Option<String>,

    /// How long a provider may stay silent: before its response headers, and between chunks.
    #[arg(long, env = "ROOST_LLM_UPSTREAM_TIMEOUT_SECS", default_value_t = 600, hide = true)]
    pub llm_upstream_timeout_secs: u64,

    /// Charge credits for model calls made with a user's own provider key too (their usage is
    /// recorded either way). Off: a user with their own key chats without spending credits.
    #[arg(long, env = "ROOST_BYOK_DEBIT")]
    pub byok_debit: bool,

    /// How long checking a newly saved user key (one model-list call) may take.
    #[arg(long, env = "ROOST_BYOK_CHECK_TIMEOUT_SECS", default_value_t = 10, hide = true)]
    pub byok_check_timeout_secs: u64,

    /// Plans, credit packs and model prices (TOML; see `billing/plans.example.toml`). Without it,
    /// everyone gets 1,000 free credits a month and only `--llm-model` is offered, at $3 / $15
    /// per million tokens (300 / 1,500 credits).
    #[arg(long, env = "ROOST_PLANS")]
    pub plans: Option<PathBuf>,
}

/// Stripe billing: Checkout, the Customer Portal and `POST /webhooks/stripe`. Off without a key.
#[derive(Debug, Clone, Args)]
pub struct StripeArgs {
    /// Stripe secret key (`sk_live_…`, `sk_test_…` or a restricted `rk_…`); turns billing on.
    #[arg(long, env = "ROOST_STRIPE_SECRET_KEY", hide_env_values = true)]
    pub stripe_secret_key: Option<SecretString>,

    /// Signing secret of the webhook endpoint (`whsec_…`) that points at `/webhooks/stripe`.
    #[arg(long, env = "ROOST_STRIPE_WEBHOOK_SECRET", hide_env_values = true)]
    pub stripe_webhook_secret: Option<SecretString>,

    /// The previous signing secret while Stripe rolls it (up to 24 hours); both are accepted.
    #[arg(long, env = "ROOST_STRIPE_WEBHOOK_SECRET_PREVIOUS", hide_env_values = true)]
    pub stripe_webhook_secret_previous: Option<SecretString>,

    /// Stripe API origin; tests point it at a fake.
    #[arg(long, env = "ROOST_STRIPE_API_BASE", default_value = "https://api.stripe.com")]
    pub stripe_api_base: String,

    /// How long one attempt of a Stripe API call may take.
    #[arg(long, env = "ROOST_STRIPE_TIMEOUT_SECS", default_value_t = 20, hide = true)]
    pub stripe_timeout_secs: u64,

    /// How often every customer's subscriptions are re-synced from Stripe, in case deliveries
    /// were missed (`1h`, `30m`; `0` = never).
    #[arg(long, env = "ROOST_STRIPE_RESYNC_INTERVAL", default_value = "6h")]
    pub stripe_resync_interval: String,

    /// How many days a stopped agent's data is kept after its subscription ended (then it is
    /// deleted; a resubscription before that starts it again with its data).
    #[arg(long, env = "ROOST_BILLING_RETENTION_DAYS", default_value_t = 30)]
    pub billing_retention_days: u32,
}

#[derive(Debug, Args)]
pub struct AdminArgs {
    #[command(flatten)]
    pub db: DbArgs,

    #[command(subcommand)]
    pub task: AdminTask,
}

#[derive(Debug, Subcommand)]
pub enum AdminTask {
    /// List accounts with their role, machine state, balance and last activity. Memory is the
    /// running server's to measure: the Admin page and `GET /api/admin/users` show it.
    Users,
    /// Show an account's newest lifecycle events (provisioning, starting, ready, stopped…).
    Events {
        email: String,
        #[arg(long, default_value_t = 20)]
        limit: u32,
    },
    /// Sign a user out everywhere: delete their sessions and revoke their API tokens.
    RevokeSessions { email: String },
    /// Delete an account and everything stored for it.
    DeleteUser { email: String },
    /// Check that every credits balance equals its grants and its ledger, and that every model
    /// call was debited what it cost; exits non-zero, naming each account, if not.
    ReconcileCredits,
    /// Give an account the admin role (`/api/admin/*` and the Admin page).
    GrantAdmin { email: String },
    /// Take the admin role away from an account.
    RevokeAdmin { email: String },
    /// Make an invite code for `--signups invite`; it is printed once.
    CreateInvite {
        /// How many accounts the code may create.
        #[arg(long, default_value_t = 1)]
        uses: u32,
        /// How long the code is valid (`7d`, `12h`, `30m`).
        #[arg(long, default_value = "7d")]
        expires_in: String,
    },
    /// List invite codes (their ids, never the codes).
    Invites,
    /// Revoke an invite code by its id (`inv_…`).
    RevokeInvite { id: String },
    /// Suspend an account: it cannot sign in, use API tokens or chat, and its agent is stopped.
    Suspend { email: String },
    /// Lift a suspension.
    Unsuspend { email: String },
    /// Add credits (positive) or take them back (negative), with a reason kept in the audit log.
    AdjustCredits {
        email: String,
        #[arg(allow_hyphen_values = true)]
        delta: i64,
        /// Why, in a few words (kept in the audit log).
        #[arg(long)]
        reason: String,
    },
    /// Print a one-time link, valid 30 minutes, that sets a new password and signs out every session.
    ResetPassword {
        email: String,
        /// The URL users open, for the link (as `serve --public-origin`).
        #[arg(long, env = "ROOST_PUBLIC_ORIGIN", default_value = "http://127.0.0.1:8080")]
        public_origin: String,
    },
    /// Show the newest entries of the admin audit log.
    Audit {
        #[arg(long, default_value_t = 50)]
        limit: u32,
    },
}

/// Secret `serve` flags present in `argv` itself. Every local process, agents included, can read
/// a process's command line in `/proc/<pid>/cmdline`; the environment is not readable that way.
/// Returns one line per flag, naming the variable to use instead.
pub fn secrets_on_command_line(argv: &[std::ffi::OsString]) -> Vec<String> {
    use clap::CommandFactory;
    let command = Cli::command();
    let Some(serve) = command.find_subcommand("serve") else { return Vec::new() };
    serve
        .get_arguments()
        .filter(|arg| arg.is_hide_env_values_set())
        .filter_map(|arg| Some((arg.get_long()?, arg.get_env()?.to_string_lossy().into_owned())))
        .filter(|(long, _)| {
            let flag = format!("--{long}");
            argv.iter().filter_map(|a| a.to_str()).any(|a| a == flag || a.starts_with(&format!("{flag}=")))
        })
        .map(|(long, env)| format!("--{long} is on the command line, where agents can read it; set {env} instead"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_flags_on_the_command_line_are_named_with_their_variable() {
        let argv: Vec<std::ffi::OsString> =
            ["roost", "serve", "--llm-openai-api-key", "sk-1", "--database-token=t", "--listen", "127.0.0.1:1"]
                .iter()
                .map(Into::into)
                .collect();
        let found = secrets_on_command_line(&argv);
        assert_eq!(found.len(), 2, "{found:?}");
        assert!(found.iter().any(|l| l.contains("--llm-openai-api-key") && l.contains("ROOST_LLM_OPENAI_API_KEY")));
        assert!(found.iter().any(|l| l.contains("--database-token") && l.contains("ROOST_DATABASE_TOKEN")));
        let clean: Vec<std::ffi::OsString> =
            ["roost", "serve", "--listen", "127.0.0.1:1"].iter().map(Into::into).collect();
        assert!(secrets_on_command_line(&clean).is_empty());
    }
}
