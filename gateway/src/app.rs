//! `App` holds everything a request needs; handlers take it as `AppState(Arc<App>)`.

use std::net::{IpAddr, SocketAddr};
use std::ops::Deref;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use anyhow::Context;
use axum::extract::{FromRequestParts, State};
use axum::http::{HeaderMap, HeaderName};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

use crate::auth::clerk::ClerkVerifier;
use crate::auth::password::PasswordHasher;
use crate::auth::rate_limit::{AuthLimiter, KeyedLimiter};
use crate::auth::svix;
use crate::config::{AgentProvider, ServeArgs};
use crate::db::Db;
use crate::domain::UserId;
use crate::llm::{LlmApi, Upstreams};
use crate::machines::simulated::Reply;
use crate::machines::{Machines, Reporter, SimulatedProvider};
use crate::openclaw::DeviceIdentity;
use crate::relay::Relays;
use provisioner::local::{Sandbox, Support};

#[derive(Clone, FromRequestParts)]
#[from_request(via(State))]
pub struct AppState(pub Arc<App>);

impl Deref for AppState {
    type Target = App;
    fn deref(&self) -> &App {
        &self.0
    }
}

pub struct App {
    pub settings: Settings,
    pub db: Db,
    pub hasher: PasswordHasher,
    pub auth_limiter: AuthLimiter,
    /// Model calls per user: a runaway agent loop cannot burn credit or the provider quota.
    pub llm_limiter: KeyedLimiter<UserId>,
    pub clerk: Option<ClerkVerifier>,
    pub clerk_webhook_key: Option<Vec<u8>>,
    pub secret: ServerSecret,
    pub metrics: PrometheusHandle,
    pub http: reqwest::Client,
    pub machines: Arc<Machines>,
    pub relays: Relays,
    /// Taken once by the server, which refreshes history whenever a chat run finishes.
    pub finished_runs: std::sync::Mutex<Option<tokio::sync::mpsc::Receiver<(UserId, String)>>>,
    pub llm: Upstreams,
    /// Session and API-token "last used" refreshes, batched off the request path.
    pub touches: crate::auth::touch::Touches,
    /// History cache writes, off the request path.
    pub history_writes: crate::chat::cache::HistoryWrites,
}

/// Settings derived from the flags once, at start.
pub struct Settings {
    pub public_origin: String,
    /// Exact origins (scheme://host[:port]) allowed for cookie-authenticated writes and `/ws`.
    pub allowed_origins: Vec<String>,
    pub secure_cookies: bool,
    pub session_idle_secs: i64,
    pub session_max_secs: i64,
    pub client_ip_header: Option<HeaderName>,
    pub local_accounts: bool,
    pub data_dir: std::path::PathBuf,
    /// How agents on this host reach Roost (the LLM proxy), e.g. `http://127.0.0.1:8080`.
    pub internal_origin: String,
    pub prewarm: bool,
    /// Set when local agents run unconfined without the operator's consent: one account only.
    pub sole_account: bool,
    pub metrics: MetricsAccess,
}

/// Where `/metrics` answers, and the Bearer token it needs.
pub struct MetricsAccess {
    pub on_main_listener: bool,
    pub token: Option<crate::secret::SecretString>,
}

impl Settings {
    pub fn accounts(&self) -> crate::db::users::Accounts {
        if self.sole_account { crate::db::users::Accounts::Sole } else { crate::db::users::Accounts::Many }
    }

    pub fn origin_allowed(&self, origin: &str) -> bool {
        self.allowed_origins.iter().any(|o| o == origin)
    }

    /// The caller's IP: the configured proxy header when present, else the socket peer.
    pub fn client_ip(&self, headers: &HeaderMap, peer: SocketAddr) -> IpAddr {
        self.client_ip_header
            .as_ref()
            .and_then(|h| headers.get(h))
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(peer.ip())
    }
}

/// The 32-byte server secret, from which per-user credentials are derived. Never logged.
pub struct ServerSecret([u8; 32]);

impl ServerSecret {
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    pub fn expose(&self) -> &[u8; 32] {
        &self.0
    }
}

impl App {
    /// Validates the flags (reporting every problem at once), opens and migrates the database.
    pub async fn build(args: &ServeArgs, bound: SocketAddr) -> anyhow::Result<Self> {
        let mut problems = crate::config_check::problems(args);
        let public_origin = match &args.public_origin {
            Some(raw) => normalize_origin(raw).map_err(|e| problems.push(format!("--public-origin: {e}"))).ok(),
            None => Some(format!("http://{bound}")),
        };
        let mut allowed_origins: Vec<String> = public_origin.iter().cloned().collect();
        for raw in &args.allowed_origins {
            match normalize_origin(raw) {
                Ok(origin) => allowed_origins.push(origin),
                Err(e) => problems.push(format!("--allowed-origins {raw:?}: {e}")),
            }
        }
        let client_ip_header = match &args.client_ip_header {
            Some(h) => HeaderName::try_from(h.as_str())
                .map_err(|_| problems.push(format!("--client-ip-header {h:?} is not a header name")))
                .ok(),
            None => None,
        };
        let clerk_webhook_key = match &args.clerk.clerk_webhook_secret {
            Some(secret) => {
                svix::decode_secret(secret).map_err(|e| problems.push(format!("--clerk-webhook-secret: {e}"))).ok()
            }
            None => None,
        };
        let secret = match load_secret(args.secret_key.as_deref(), &args.db.data_dir) {
            Ok(secret) => Some(secret),
            Err(e) => {
                problems.push(format!("--secret-key: {e:#}"));
                None
            }
        };
        let http = reqwest::Client::builder().user_agent(concat!("roost/", env!("CARGO_PKG_VERSION"))).build()?;
        let clerk = match &args.clerk.clerk_issuer {
            Some(issuer) => {
                let parties = if args.clerk.clerk_authorized_parties.is_empty() {
                    allowed_origins.clone()
                } else {
                    args.clerk.clerk_authorized_parties.clone()
                };
                ClerkVerifier::new(
                    issuer,
                    args.clerk.clerk_jwt_key.as_deref(),
                    args.clerk.clerk_jwks_url.as_deref(),
                    parties,
                    http.clone(),
                )
                .map_err(|e| problems.push(format!("Clerk: {e:#}")))
                .ok()
            }
            None => None,
        };
        if args.disable_local_accounts && clerk.is_none() && args.clerk.clerk_issuer.is_none() {
            problems.push("--disable-local-accounts needs Clerk (--clerk-issuer), or nobody can sign in".into());
        }
        if args.agents.agent_provider == AgentProvider::Local {
            let argv: Vec<std::ffi::OsString> = std::env::args_os().collect();
            problems.extend(crate::config::secrets_on_command_line(&argv));
        }
        let llm = Upstreams::from_args(&args.llm).map_err(|mut llm_problems| problems.append(&mut llm_problems)).ok();
        if !problems.is_empty() {
            anyhow::bail!("invalid configuration:\n  - {}", problems.join("\n  - "));
        }
        let public_origin = public_origin.expect("checked above");
        crate::private_files::dir(&args.db.data_dir)?;

        let db = Db::open(&args.db.database_location(), args.db.database_token.as_deref()).await?;
        crate::db::migrate::run(&db).await.context("migrating the database")?;
        let sandbox = (args.agents.agent_provider == AgentProvider::Local).then(|| choose_sandbox(&args.agents));
        let sole_account = match sandbox.as_ref().and_then(Sandbox::single_account_reason) {
            Some(why) => {
                let accounts = crate::db::users::count(&*db.conn()?).await?;
                let line = format!(
                    "agents cannot be sandboxed: {why}, so Roost serves one account only; on a single-user \
                     machine, accept the risk with --unsandboxed-agents (ROOST_UNSANDBOXED_AGENTS=true)"
                );
                anyhow::ensure!(accounts <= 1, "{line} (this database has {accounts} accounts)");
                tracing::warn!("{line}");
                true
            }
            None => false,
        };
        if let Some(sandbox) = &sandbox {
            tracing::info!(sandbox = %sandbox.describe(), "local agents are confined");
        }

        let secret = secret.expect("checked above");
        let internal_origin = internal_origin(bound);
        let llm = llm.expect("checked above");
        let machines = Arc::new(build_machines(args, &db, &secret, &internal_origin, &llm, sandbox).await?);
        let device = DeviceIdentity::load_or_create(&args.db.data_dir)?;
        let (finished_tx, finished_rx) = tokio::sync::mpsc::channel(256);
        let touches = crate::auth::touch::Touches::start(db.clone());
        let history_writes = crate::chat::cache::HistoryWrites::start(db.clone());

        Ok(Self {
            settings: Settings {
                secure_cookies: public_origin.starts_with("https://"),
                public_origin,
                allowed_origins,
                session_idle_secs: args.session_idle_hours as i64 * 3600,
                session_max_secs: args.session_max_days as i64 * 86_400,
                client_ip_header,
                local_accounts: !args.disable_local_accounts,
                data_dir: args.db.data_dir.clone(),
                internal_origin,
                prewarm: !args.agents.no_prewarm,
                sole_account,
                metrics: MetricsAccess {
                    on_main_listener: args.http.metrics_listen.is_none() && args.http.metrics_token.is_some(),
                    token: args.http.metrics_token.clone(),
                },
            },
            db,
            hasher: PasswordHasher::new(2),
            auth_limiter: AuthLimiter::new(args.auth_rate_per_ip, args.auth_rate_per_email),
            llm_limiter: KeyedLimiter::per_minute(args.llm_rate_per_user),
            clerk,
            clerk_webhook_key,
            secret,
            metrics: metrics_handle(),
            http,
            machines,
            relays: Relays::new(device, finished_tx, llm.preferred_api().is_some(), relay_timings(&args.agents)),
            finished_runs: std::sync::Mutex::new(Some(finished_rx)),
            llm,
            touches,
            history_writes,
        })
    }

    /// The provider API agents should speak through `/llm/*` (OpenAI when both are configured).
    pub fn llm_api(&self) -> Option<LlmApi> {
        self.llm.preferred_api()
    }

    /// The model id agents use by default (`--llm-model`).
    pub fn llm_model(&self) -> Option<&str> {
        self.llm.default_model()
    }
}

fn choose_sandbox(agents: &crate::config::AgentArgs) -> Sandbox {
    let support = match agents.assume_landlock_abi {
        Some(0) => Support::Missing,
        Some(abi) => Support::Landlock { abi },
        None => Support::probe(),
    };
    Sandbox::choose(support, agents.unsandboxed_agents)
}

/// Agents run on this host, so they reach Roost on loopback whatever address it listens on.
fn internal_origin(bound: SocketAddr) -> String {
    if bound.ip().is_unspecified() || bound.ip().is_loopback() {
        format!("http://127.0.0.1:{}", bound.port())
    } else {
        format!("http://{bound}")
    }
}

async fn build_machines(
    args: &ServeArgs,
    db: &Db,
    secret: &ServerSecret,
    internal_origin: &str,
    llm: &Upstreams,
    sandbox: Option<Sandbox>,
) -> anyhow::Result<Machines> {
    let reporter = Arc::new(Reporter::new(db.clone()));
    let agents = &args.agents;
    let (provider, fake): (Arc<dyn provisioner::Provider>, _) = match agents.agent_provider {
        AgentProvider::Fake => {
            let fake = SimulatedProvider::new(
                Reply::Text(
                    "Hello from your simulated agent. Install OpenClaw with the local provider for a real one.".into(),
                ),
                std::time::Duration::from_millis(50),
            )
            .echoing(agents.fake_agent_echo)
            .external(agents.fake_agent_url.clone());
            let fake = Arc::new(fake);
            (fake.clone(), Some(fake))
        }
        AgentProvider::Local => {
            let helper = match &agents.agent_exec_bin {
                Some(path) => path.clone(),
                None => std::env::current_exe().context("finding the roost binary to launch agents with")?,
            };
            let data_dir = &args.db.data_dir;
            let mut protected = vec![data_dir.clone(), data_dir.join("secret.key")];
            if !args.db.database_location().starts_with("libsql:") {
                protected.push(PathBuf::from(args.db.database_location()));
            }
            let launch = provisioner::local::Launch {
                helper,
                sandbox: sandbox.expect("chosen for the local provider"),
                protected,
            };
            let provider = provisioner::local::LocalProvider::new(
                provisioner::local::LocalOptions {
                    data_dir: data_dir.clone(),
                    runtime_dir: agents.runtime_dir.clone().unwrap_or_else(|| data_dir.join("runtime")),
                    openclaw_bin: agents.openclaw_bin.clone(),
                    node_bin: agents.node_bin.clone(),
                    ready_timeout: std::time::Duration::from_secs(agents.agent_ready_timeout_secs),
                    background: reporter.clone(),
                },
                launch,
            )
            .await;
            (Arc::new(provider), None)
        }
    };
    let secret = ServerSecret(*secret.expose());
    // Agents speak whichever API the operator configured, always through Roost's metered proxy.
    let (llm_base, api) = match llm.preferred_api() {
        Some(LlmApi::Anthropic) => (format!("{internal_origin}/llm/anthropic"), "anthropic-messages"),
        _ => (format!("{internal_origin}/llm/openai/v1"), "openai-completions"),
    };
    let model = llm.default_model().unwrap_or("default").to_string();
    if llm.preferred_api().is_some() && llm.default_model().is_none() {
        tracing::warn!("no --llm-model (ROOST_LLM_MODEL) is set; agents will ask the provider for model \"default\"");
    }
    let spec: crate::machines::SpecFactory = Box::new(move |user: &UserId| provisioner::AgentSpec {
        user_id: user.to_string(),
        gateway_token: crate::agent_credentials::gateway_token(&secret, user),
        llm: provisioner::LlmEndpoint {
            base_url: llm_base.clone(),
            api,
            credential: crate::agent_credentials::llm_credential(&secret, user),
            model: model.clone(),
        },
    });
    Ok(Machines::new(provider, fake, spec, reporter))
}

/// `scheme://host[:port]` of an http(s) URL with no path, query or credentials.
pub fn normalize_origin(raw: &str) -> anyhow::Result<String> {
    let url = url::Url::parse(raw.trim()).context("not a URL")?;
    anyhow::ensure!(matches!(url.scheme(), "http" | "https"), "must be http:// or https://");
    anyhow::ensure!(
        url.path() == "/" && url.query().is_none() && url.username().is_empty(),
        "must be an origin, with no path, query or user"
    );
    Ok(url.origin().ascii_serialization())
}

fn load_secret(hex_key: Option<&str>, data_dir: &Path) -> anyhow::Result<ServerSecret> {
    let parse = |text: &str| -> anyhow::Result<ServerSecret> {
        let bytes = hex::decode(text.trim()).context("must be 64 hex characters")?;
        Ok(ServerSecret(bytes.try_into().map_err(|_| anyhow::anyhow!("must be 64 hex characters (32 bytes)"))?))
    };
    if let Some(key) = hex_key {
        return parse(key);
    }
    let path = data_dir.join("secret.key");
    if path.exists() {
        crate::private_files::tighten(&path, 0o600)?;
        return parse(&std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?);
    }
    crate::private_files::dir(data_dir)?;
    let key = crate::crypto::random_bytes::<32>();
    crate::private_files::write_new(&path, hex::encode(key).as_bytes())?;
    tracing::info!(path = %path.display(), "generated a new server secret");
    Ok(ServerSecret(key))
}

/// The Prometheus recorder is process-wide; every `App` in a process (tests run many) shares it.
fn metrics_handle() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let recorder = PrometheusBuilder::new().build_recorder();
            let handle = recorder.handle();
            let _ = metrics::set_global_recorder(recorder);
            handle
        })
        .clone()
}

fn relay_timings(agents: &crate::config::AgentArgs) -> crate::relay::Timings {
    let secs = std::time::Duration::from_secs;
    crate::relay::Timings {
        link_idle: secs(agents.agent_link_idle_secs),
        browser_ping: secs(agents.browser_ping_secs.max(1)),
        browser_pong_deadline: secs(agents.browser_pong_deadline_secs),
        agent: crate::relay::AgentTimings {
            ping: secs(agents.agent_ping_secs.max(1)),
            silence: secs(agents.agent_silence_secs),
            write: secs(10),
        },
        credential_recheck: secs(agents.credential_recheck_secs.max(1)),
    }
}
