//! `App` holds everything a request needs; handlers take it as `AppState(Arc<App>)`. Building
//! it only wires parts from [`Settings`], which has checked every flag already.

use std::ops::Deref;
use std::sync::{Arc, OnceLock};

use anyhow::Context;
use axum::extract::{FromRequestParts, State};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

use crate::auth::clerk::ClerkVerifier;
use crate::auth::password::PasswordHasher;
use crate::auth::rate_limit::{AuthLimiter, KeyedLimiter};
use crate::db::Db;
use crate::db::users::Accounts;
use crate::domain::UserId;
use crate::llm::{LlmApi, Upstreams};
use crate::machines::simulated::Reply;
use crate::machines::{Machines, Reporter, SimulatedProvider};
use crate::openclaw::DeviceIdentity;
use crate::relay::Relays;
use crate::secret::ServerSecret;
use crate::settings::{Agents, FakeAgents, LocalAgents, Runner, Settings, Site};
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
    pub site: Site,
    /// One account only while agents run unconfined without the operator's consent.
    pub accounts: Accounts,
    pub db: Db,
    pub hasher: PasswordHasher,
    pub auth_limiter: AuthLimiter,
    /// Model calls per user: a runaway agent loop cannot burn credit or the provider quota.
    pub llm_limiter: KeyedLimiter<UserId>,
    pub clerk: Option<ClerkVerifier>,
    pub clerk_webhook_key: Option<Vec<u8>>,
    pub secret: Arc<ServerSecret>,
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
    /// Plans, packs and model prices (`--plans`, or the built-in defaults).
    pub catalog: Arc<billing::plans::Catalog>,
    pub credit_refusals: Arc<crate::llm::CreditRefusals>,
    /// Stripe billing (`--stripe-secret-key`); `None`: off, everyone is on the free plan.
    pub stripe: Option<crate::stripe_sync::StripeBilling>,
    /// Telegram and Discord bots (`--telegram-api-base`, `--discord-api-base`).
    pub integrations: crate::integrations::Integrations,
    /// The task API (`/api/v1/tasks`): its limits and the runs in progress here.
    pub tasks: crate::tasks::Tasks,
    /// "Forgot password" mail (`--smtp-url`); `None`: users ask the operator for a link.
    pub mailer: Option<Arc<crate::mail::Mailer>>,
    /// Agent backups and restores in progress, and their scratch dir (`<data-dir>/backups`).
    pub backups: crate::export::Backups,
}

impl App {
    /// Opens and migrates the database, then wires the parts.
    pub async fn build(settings: Settings) -> anyhow::Result<Self> {
        let Settings {
            site,
            data_dir,
            database,
            secret,
            auth,
            llm,
            agents,
            relay,
            replay_memory_limit,
            http: _,
            stripe,
            integrations,
            tasks,
        } = settings;
        let stripe = stripe.map(crate::stripe_sync::StripeBilling::new).transpose()?;
        crate::private_files::dir(&data_dir)?;
        let db = Db::open(&database.location, database.token.as_deref()).await?;
        crate::db::migrate::run(&db).await.context("migrating the database")?;
        let sandbox = match &agents.runner {
            Runner::Local(local) => Some(choose_sandbox(local)),
            Runner::Fake(_) | Runner::Fly(_) => None,
        };
        let accounts = accounts_allowed(&db, sandbox.as_ref()).await?;
        // Fly agents sit behind their sidecar, which admits only their agent secret.
        let behind_sidecar = matches!(agents.runner, Runner::Fly(_));

        let http = reqwest::Client::builder().user_agent(concat!("roost/", env!("CARGO_PKG_VERSION"))).build()?;
        let secret = Arc::new(secret);
        let credit_refusals = Arc::new(crate::llm::CreditRefusals::default());
        let explain = crate::relay::Explain {
            model_configured: llm.upstreams.preferred_api().is_some(),
            refusals: credit_refusals.clone(),
        };
        let upstreams = Upstreams::new(llm.upstreams)?;
        let catalog = Arc::new(llm.catalog);
        // The Discord plugin reads its API base from `DISCORD_API_URL` (loopback http allowed),
        // and finds the gateway WebSocket on the same origin.
        let discord_api_url = (integrations.discord_api_base != crate::integrations::DISCORD_API_BASE)
            .then(|| integrations.discord_api_base.clone());
        let machines = Arc::new(build_machines(agents, &db, &secret, &catalog, sandbox, discord_api_url).await?);
        let activity = machines.activity().clone();
        let device = DeviceIdentity::load_or_create(&data_dir)?;
        let (finished_tx, finished_rx) = tokio::sync::mpsc::channel(256);
        let touches = crate::auth::touch::Touches::start(db.clone());
        let history_writes = crate::chat::cache::HistoryWrites::start(db.clone());
        let relays =
            Relays::new(db.clone(), device, secret.clone(), finished_tx, activity, explain, relay, replay_memory_limit);
        let relays = if behind_sidecar { relays.with_agent_secrets() } else { relays };

        Ok(Self {
            site,
            accounts,
            db,
            hasher: PasswordHasher::new(auth.hash_workers, auth.hash_queue).context("starting the hash threads")?,
            auth_limiter: AuthLimiter::new(auth.rate_per_ip, auth.failures_per_email),
            llm_limiter: KeyedLimiter::per_minute(llm.rate_per_user),
            clerk: auth.clerk.map(|config| ClerkVerifier::new(config, http.clone())),
            clerk_webhook_key: auth.clerk_webhook_key,
            mailer: auth.mail.map(crate::mail::Mailer::new).transpose()?.map(Arc::new),
            backups: crate::export::Backups::new(&data_dir)?,
            secret: secret.clone(),
            metrics: metrics_handle(),
            http,
            machines,
            relays,
            finished_runs: std::sync::Mutex::new(Some(finished_rx)),
            llm: upstreams,
            touches,
            history_writes,
            catalog,
            credit_refusals,
            stripe,
            integrations: crate::integrations::Integrations::new(integrations)?,
            tasks: crate::tasks::Tasks::new(tasks),
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

// Checks that need more than the flags: the kernel (can agents be confined?) and the database
// (how many accounts exist?).

fn choose_sandbox(local: &LocalAgents) -> Sandbox {
    Sandbox::choose(local.assumed_support.unwrap_or_else(Support::probe), local.unsandboxed_accepted)
}

async fn accounts_allowed(db: &Db, sandbox: Option<&Sandbox>) -> anyhow::Result<Accounts> {
    if let Some(sandbox) = sandbox {
        tracing::info!(sandbox = %sandbox.describe(), "local agents are confined");
    }
    let Some(why) = sandbox.and_then(Sandbox::single_account_reason) else { return Ok(Accounts::Many) };
    let accounts = crate::db::users::count(&*db.conn()?).await?;
    let line = format!(
        "agents cannot be sandboxed: {why}, so Roost serves one account only; on a single-user \
         machine, accept the risk with --unsandboxed-agents (ROOST_UNSANDBOXED_AGENTS=true)"
    );
    anyhow::ensure!(accounts <= 1, "{line} (this database has {accounts} accounts)");
    tracing::warn!("{line}");
    Ok(Accounts::Sole)
}

async fn build_machines(
    agents: Agents,
    db: &Db,
    secret: &Arc<ServerSecret>,
    catalog: &Arc<billing::plans::Catalog>,
    sandbox: Option<Sandbox>,
    discord_api_url: Option<String>,
) -> anyhow::Result<Machines> {
    let reporter = Arc::new(Reporter::new(db.clone()));
    let limits = agents.limits;
    let mut fly_handle = None;
    let (provider, fake): (Arc<dyn provisioner::Provider>, _) = match agents.runner {
        Runner::Fake(FakeAgents { echo, external_url }) => {
            let fake = SimulatedProvider::new(
                Reply::Text(
                    "Hello from your simulated agent. Install OpenClaw with the local provider for a real one.".into(),
                ),
                std::time::Duration::from_millis(50),
            )
            .echoing(echo)
            .external(external_url)
            .reporting_to(reporter.clone());
            let fake = Arc::new(fake);
            (fake.clone(), Some(fake))
        }
        Runner::Fly(fly) => {
            let fly = Arc::new(fly_provider(fly, db, secret)?);
            fly_handle = Some(fly.clone());
            (fly, None)
        }
        Runner::Local(local) => {
            let helper = match local.exec_bin {
                Some(path) => path,
                None => std::env::current_exe().context("finding the roost binary to launch agents with")?,
            };
            let launch = provisioner::local::Launch {
                helper,
                sandbox: sandbox.expect("chosen for the local provider"),
                protected: local.protected,
                env: discord_api_url.map(|url| ("DISCORD_API_URL".to_string(), url)).into_iter().collect(),
            };
            let provider = provisioner::local::LocalProvider::new(
                provisioner::local::LocalOptions {
                    data_dir: local.data_dir,
                    runtime_dir: local.runtime_dir,
                    openclaw_bin: local.openclaw_bin,
                    node_bin: local.node_bin,
                    ready_timeout: local.ready_timeout,
                    background: reporter.clone(),
                    crash_limit: local.crash_limit,
                    memory_sample_interval: provisioner::local::MEMORY_SAMPLE_INTERVAL,
                },
                launch,
            )
            .await;
            (Arc::new(provider), None)
        }
    };
    let secret = secret.clone();
    let model = agents.model;
    let (catalog, spec_db) = (catalog.clone(), db.clone());
    let spec: crate::machines::SpecFactory = Box::new(move |user: &UserId| {
        let mut spec = provisioner::AgentSpec {
            user_id: user.to_string(),
            gateway_token: crate::agent_credentials::gateway_token(&secret, user),
            agent_secret: crate::agent_credentials::agent_secret(&secret, user),
            llm: provisioner::LlmEndpoint {
                base_url: model.base_url.clone(),
                api: model.api,
                credential: crate::agent_credentials::llm_credential(&secret, user),
                model: model.model.clone(),
            },
            guest: None,
            suspend: None,
        };
        let (catalog, db, user) = (catalog.clone(), spec_db.clone(), user.clone());
        Box::pin(async move {
            // Read at each start and reconciler round, so a plan change reaches the machine.
            let (guest, suspend) = crate::stripe_sync::agent_plan(&db, &catalog, &user).await?;
            spec.guest = guest;
            spec.suspend = Some(suspend);
            Ok(spec)
        })
    });
    let leases = provisioner::lease::Leases::new(
        Box::new(crate::db::leases::DbLeases(db.clone())),
        provisioner::lease::Leases::instance_name(),
        limits.lease_ttl,
    );
    Ok(Machines::new(provider, fake, spec, reporter, limits, leases).with_fly(fly_handle))
}

/// One Fly app, volume and machine per user, through the Machines API; the provider's record of
/// each user's Fly ids lives in `fly_machines`.
fn fly_provider(
    fly: crate::settings::FlyAgents,
    db: &Db,
    secret: &ServerSecret,
) -> anyhow::Result<provisioner::fly::FlyProvider> {
    use provisioner::fly::{ApiToken, FlyClient, FlyConfig, FlyOptions};
    let mut config = FlyConfig::new(ApiToken::new(fly.api_token.expose()));
    config.base_url = fly.api_base;
    // Settings checked the token for characters a header cannot carry; the error names none.
    let client = FlyClient::new(config).context("the Fly API token")?;
    // App names are derived under a key of their own, so they reveal nothing of other secrets.
    let name_key = crate::crypto::hmac_sha256(secret.expose(), b"roost fly app names");
    let mut options = FlyOptions::new(fly.org, fly.regions, fly.image, name_key.to_vec());
    options.guest = fly.guest;
    options.agent_address = fly.agent_address;
    options.ready_timeout = fly.ready_timeout;
    let store = Arc::new(crate::db::fly_machines::DbFlyStore(db.clone()));
    Ok(provisioner::fly::FlyProvider::new(client, options, store))
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
