//! `serve` flags and environment → one [`Settings`], checked and parsed in one pass. Every
//! problem is one line and all are reported at once. Past this point nothing reads clap types.

mod agents;
mod fly;
mod integrations;
mod llm;
mod mail;
mod stripe;
mod tasks;

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;

use anyhow::Context;
use axum::http::{HeaderMap, HeaderName};

pub use agents::{AgentModel, Agents, FakeAgents, LocalAgents, Runner};
pub use fly::FlyAgents;
pub use integrations::IntegrationSettings;
pub use mail::MailSettings;
pub use stripe::StripeSettings;
pub use tasks::TaskSettings;

use crate::auth::clerk::ClerkConfig;
use crate::config::{AgentProvider, ServeArgs, SignupPolicy};
use crate::http_server::Limits;
use crate::llm::UpstreamsConfig;
use crate::secret::{SecretString, ServerSecret};

const MIN_METRICS_TOKEN_CHARS: usize = 16;

pub struct Settings {
    pub site: Site,
    pub data_dir: PathBuf,
    pub database: Database,
    pub secret: ServerSecret,
    pub auth: Auth,
    pub llm: Llm,
    pub agents: Agents,
    pub relay: crate::relay::Timings,
    /// Bytes every user's replay buffer may hold together.
    pub replay_memory_limit: usize,
    pub http: Http,
    /// Stripe billing; `None` when it is off (everyone is on the free plan).
    pub stripe: Option<StripeSettings>,
    pub integrations: IntegrationSettings,
    pub tasks: TaskSettings,
}

/// What requests are checked against: origins, cookies, sessions, client IPs, `/metrics`.
pub struct Site {
    pub public_origin: String,
    /// Exact origins (scheme://host[:port]) allowed for cookie-authenticated writes and `/ws`.
    pub allowed_origins: Vec<String>,
    pub secure_cookies: bool,
    pub session_idle_secs: i64,
    pub session_max_secs: i64,
    pub client_ip_header: Option<HeaderName>,
    pub local_accounts: bool,
    /// Who may create an account, local or through Clerk.
    pub signups: SignupPolicy,
    pub prewarm: bool,
    pub metrics: MetricsAccess,
}

/// Where `/metrics` answers, and the Bearer token it needs.
pub struct MetricsAccess {
    pub on_main_listener: bool,
    pub token: Option<SecretString>,
}

pub struct Database {
    /// A local file path, or a `libsql://` URL.
    pub location: String,
    pub token: Option<String>,
}

pub struct Auth {
    pub rate_per_ip: u32,
    /// Threads for password hashing, and how many hashes may wait for one.
    pub hash_workers: usize,
    pub hash_queue: usize,
    pub failures_per_email: u32,
    pub clerk: Option<ClerkConfig>,
    /// The decoded Svix secret that signs Clerk's webhooks.
    pub clerk_webhook_key: Option<Vec<u8>>,
    /// Where "forgot password" links are mailed from; `None`: no mail, users ask the operator.
    pub mail: Option<MailSettings>,
}

pub struct Llm {
    pub upstreams: UpstreamsConfig,
    pub rate_per_user: u32,
    /// What model calls cost, and the plans that grant credits.
    pub catalog: billing::plans::Catalog,
}

pub struct Http {
    pub limits: Limits,
    /// `/metrics` alone, on an address of its own.
    pub metrics_listen: Option<SocketAddr>,
}

/// Every problem with the flags, one line each.
#[derive(Debug, Default)]
pub struct Problems(Vec<String>);

impl Problems {
    pub fn lines(&self) -> &[String] {
        &self.0
    }

    fn push(&mut self, line: impl Into<String>) {
        self.0.push(line.into());
    }

    /// The value, or `None` with the error noted as `what: error`.
    fn check<T>(&mut self, what: impl std::fmt::Display, result: anyhow::Result<T>) -> Option<T> {
        result.map_err(|e| self.push(format!("{what}: {e:#}"))).ok()
    }
}

impl std::fmt::Display for Problems {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "invalid configuration:\n  - {}", self.0.join("\n  - "))
    }
}

impl std::error::Error for Problems {}

impl Settings {
    /// `bound` is the address the listener got (`--listen` may ask for port 0).
    pub fn from_args(args: &ServeArgs, bound: SocketAddr) -> Result<Self, Problems> {
        let mut problems = Problems::default();
        check_values(args, &mut problems);
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
        let client_ip_header = args.client_ip_header.as_ref().and_then(|h| {
            HeaderName::try_from(h.as_str())
                .map_err(|_| problems.push(format!("--client-ip-header {h:?} is not a header name")))
                .ok()
        });
        let clerk_webhook_key = args
            .clerk
            .clerk_webhook_secret
            .as_ref()
            .and_then(|secret| problems.check("--clerk-webhook-secret", crate::auth::svix::decode_secret(secret)));
        let secret = problems.check("--secret-key", ServerSecret::load(args.secret_key.as_deref(), &args.db.data_dir));
        let clerk = args.clerk.clerk_issuer.as_ref().and_then(|issuer| {
            let parties = if args.clerk.clerk_authorized_parties.is_empty() {
                allowed_origins.clone()
            } else {
                args.clerk.clerk_authorized_parties.clone()
            };
            let clerk = &args.clerk;
            let config =
                ClerkConfig::parse(issuer, clerk.clerk_jwt_key.as_deref(), clerk.clerk_jwks_url.as_deref(), parties);
            problems.check("Clerk", config)
        });
        if args.disable_local_accounts && args.clerk.clerk_issuer.is_none() {
            problems.push("--disable-local-accounts needs Clerk (--clerk-issuer), or nobody can sign in");
        }
        if args.agents.agent_provider == AgentProvider::Local {
            let argv: Vec<std::ffi::OsString> = std::env::args_os().collect();
            problems.0.extend(crate::config::secrets_on_command_line(&argv));
        }
        let fly = match args.agents.agent_provider {
            AgentProvider::Fly => fly::fly(&args.agents, &mut problems),
            _ => None,
        };
        let upstreams = llm::upstreams(&args.llm, &mut problems);
        let catalog = match &args.llm.plans {
            Some(path) => problems.check(format!("--plans {}", path.display()), llm::catalog(path)).map(Some),
            None => Some(None),
        };
        let replay_memory_limit = args
            .replay_memory_limit_mib
            .checked_mul(1024 * 1024)
            .and_then(|bytes| usize::try_from(bytes).ok())
            .filter(|bytes| *bytes > 0);
        if args.replay_memory_limit_mib > 0 && replay_memory_limit.is_none() {
            problems.push(format!(
                "--replay-memory-limit-mib {} is more than this machine can address",
                args.replay_memory_limit_mib
            ));
        }
        let stripe = stripe::stripe(&args.stripe, catalog.as_ref().and_then(Option::as_ref), &mut problems);
        let integrations = integrations::integrations(&args.integrations, &mut problems);
        let tasks = tasks::tasks(&args.tasks, &mut problems);
        let mail = mail::mail(&args.mail, &mut problems);
        let (
            Some(public_origin),
            Some(secret),
            Some(upstreams),
            Some(catalog),
            Some(stripe),
            Some(integrations),
            Some(mail),
            true,
        ) = (public_origin, secret, upstreams, catalog, stripe, integrations, mail, problems.0.is_empty())
        else {
            return Err(problems);
        };

        let database = Database { location: args.db.database_location(), token: args.db.database_token.clone() };
        let agents = agents::agents(args, &upstreams, bound, &public_origin, fly);
        let catalog = catalog.unwrap_or_else(|| billing::plans::Catalog::built_in(Some(&agents.model.model)));
        Ok(Self {
            site: Site {
                secure_cookies: public_origin.starts_with("https://"),
                public_origin,
                allowed_origins,
                session_idle_secs: args.session_idle_hours as i64 * 3600,
                session_max_secs: args.session_max_days as i64 * 86_400,
                client_ip_header,
                local_accounts: !args.disable_local_accounts,
                signups: signup_policy(args),
                prewarm: !args.agents.no_prewarm,
                metrics: MetricsAccess {
                    on_main_listener: args.http.metrics_listen.is_none() && args.http.metrics_token.is_some(),
                    token: args.http.metrics_token.clone(),
                },
            },
            data_dir: args.db.data_dir.clone(),
            database,
            secret,
            auth: Auth {
                rate_per_ip: args.auth_rate_per_ip,
                hash_workers: args.password_hash_workers.unwrap_or_else(crate::auth::password::default_workers),
                hash_queue: args.password_hash_queue,
                failures_per_email: args.auth_rate_per_email,
                clerk,
                clerk_webhook_key,
                mail,
            },
            llm: Llm { upstreams, rate_per_user: args.llm_rate_per_user, catalog },
            agents,
            relay: agents::relay_timings(&args.agents),
            replay_memory_limit: replay_memory_limit.unwrap_or(usize::MAX),
            http: Http {
                limits: Limits {
                    max_connections: args.http.max_connections,
                    max_websockets: args.http.max_websockets,
                    header_read_timeout: std::time::Duration::from_secs(args.http.header_read_timeout_secs),
                },
                metrics_listen: args.http.metrics_listen,
            },
            stripe,
            integrations,
            tasks,
        })
    }
}

impl Database {
    pub fn is_remote(&self) -> bool {
        self.location.contains("://")
    }
}

impl Site {
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

/// `--signups`, or by default `open` on a loopback listener (a machine of one's own) and `invite`
/// on any other (where strangers could reach it).
fn signup_policy(args: &ServeArgs) -> SignupPolicy {
    args.signups.unwrap_or(if args.listen.ip().is_loopback() { SignupPolicy::Open } else { SignupPolicy::Invite })
}

/// Values that mean nothing, and combinations that cannot work, judged from the flags alone.
fn check_values(args: &ServeArgs, problems: &mut Problems) {
    if args.session_idle_hours == 0 || args.session_max_days == 0 {
        problems.push("--session-idle-hours and --session-max-days must be at least 1");
    }
    let at_least_one = [
        ("--auth-rate-per-ip", args.auth_rate_per_ip as u64, "would refuse every login"),
        ("--auth-rate-per-email", args.auth_rate_per_email as u64, "would refuse every login"),
        ("--llm-rate-per-user", args.llm_rate_per_user as u64, "would refuse every model call"),
        ("--agent-ready-timeout-secs", args.agents.agent_ready_timeout_secs, "would give no agent time to start"),
        ("--max-connections", args.http.max_connections as u64, "would refuse every connection"),
        ("--max-websockets", args.http.max_websockets as u64, "would refuse every chat connection"),
        ("--header-read-timeout-secs", args.http.header_read_timeout_secs, "would close every connection"),
        ("--max-agents", args.agents.max_agents.unwrap_or(1) as u64, "would start no agent"),
        ("--agent-crash-limit", u64::from(args.agents.agent_crash_limit), "would fail an agent that never crashed"),
        ("--replay-memory-limit-mib", args.replay_memory_limit_mib, "would keep no event for resume"),
        ("--password-hash-workers", args.password_hash_workers.unwrap_or(1) as u64, "would refuse every login"),
    ];
    for (flag, value, effect) in at_least_one {
        if value == 0 {
            problems.push(format!("{flag} is 0, which {effect}; it must be at least 1"));
        }
    }
    if let Err(e) = crate::lifecycle::parse_duration(&args.agents.agent_idle_timeout) {
        problems.push(format!("--agent-idle-timeout: {e}"));
    }
    match crate::lifecycle::parse_duration(&args.agents.agent_crash_window) {
        Ok(Some(_)) => {}
        Ok(None) => problems
            .push("--agent-crash-window is 0, which would count no crash; it must be a duration like 10m, 90s or 1h"),
        Err(e) => problems.push(format!("--agent-crash-window: {e}")),
    }
    if args.agents.node_bin.is_some() && args.agents.openclaw_bin.is_none() {
        problems
            .push("--node-bin is only used to run --openclaw-bin; set both, or neither to use the installed runtime");
    }
    if let Some(token) = &args.http.metrics_token
        && token.expose().chars().count() < MIN_METRICS_TOKEN_CHARS
    {
        problems.push(format!("--metrics-token must be at least {MIN_METRICS_TOKEN_CHARS} characters"));
    }
    if args.public_origin.is_none() && !args.listen.ip().is_loopback() {
        problems.push(format!(
            "--listen {} is not a loopback address, so browsers will not open http://{0} and every write \
             would be refused as cross-origin; set --public-origin (ROOST_PUBLIC_ORIGIN) to the URL users \
             open, e.g. https://roost.example.com",
            args.listen
        ));
    }
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

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;
    use crate::config::{Cli, Command};

    const KEY: &str = "--secret-key=1111111111111111111111111111111111111111111111111111111111111111";

    fn parse(flags: &[&str]) -> Result<Settings, Problems> {
        let argv = [&["roost", "serve", KEY], flags].concat();
        let Command::Serve(args) = Cli::try_parse_from(argv).expect("flags parse").command else { unreachable!() };
        Settings::from_args(&args, args.listen)
    }

    fn problems_for(flags: &[&str]) -> Vec<String> {
        match parse(flags) {
            Ok(_) => Vec::new(),
            Err(problems) => problems.0,
        }
    }

    #[test]
    fn the_defaults_have_no_problem() {
        assert_eq!(problems_for(&[]), Vec::<String>::new());
    }

    #[test]
    fn values_that_mean_nothing_get_one_line_each() {
        let found = problems_for(&[
            "--auth-rate-per-ip=0",
            "--auth-rate-per-email=0",
            "--llm-rate-per-user=0",
            "--agent-ready-timeout-secs=0",
            "--max-connections=0",
            "--node-bin=/usr/bin/node",
        ]);
        assert_eq!(found.len(), 6, "{found:#?}");
        for flag in ["--auth-rate-per-ip", "--auth-rate-per-email", "--llm-rate-per-user", "--agent-ready-timeout-secs"]
        {
            assert_eq!(found.iter().filter(|l| l.starts_with(&format!("{flag} is 0"))).count(), 1, "{flag}");
        }
        assert!(found.iter().any(|l| l.starts_with("--node-bin") && l.contains("--openclaw-bin")));
        assert!(problems_for(&["--node-bin=/n", "--openclaw-bin=/o.mjs"]).is_empty());
    }

    #[test]
    fn the_crash_limit_flags_are_checked_and_default_to_the_providers_limit() {
        let found = problems_for(&["--agent-crash-limit=0", "--agent-crash-window=0"]);
        assert_eq!(
            found,
            [
                "--agent-crash-limit is 0, which would fail an agent that never crashed; it must be at least 1",
                "--agent-crash-window is 0, which would count no crash; it must be a duration like 10m, 90s or 1h",
            ]
        );
        let found = problems_for(&["--agent-crash-window=soon"]);
        assert_eq!(found, [r#"--agent-crash-window: "soon" is not a duration like 30m, 45s or 0"#]);

        let limit = |flags: &[&str]| match parse(flags).map(|s| s.agents.runner) {
            Ok(agents::Runner::Local(local)) => local.crash_limit,
            _ => panic!("valid local flags"),
        };
        assert_eq!(limit(&[]), provisioner::local::CrashLimit::DEFAULT);
        let configured = limit(&["--agent-crash-limit=3", "--agent-crash-window=90s"]);
        assert_eq!((configured.crashes, configured.window.as_secs()), (3, 90));
    }

    #[test]
    fn a_public_listen_address_needs_a_public_origin() {
        let found = problems_for(&["--listen", "0.0.0.0:8080"]);
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(found[0].contains("--public-origin") && found[0].contains("0.0.0.0:8080"), "{}", found[0]);
        assert!(problems_for(&["--listen", "0.0.0.0:8080", "--public-origin", "https://r.example"]).is_empty());
        assert!(problems_for(&["--listen", "[::1]:8080"]).is_empty());
    }

    #[test]
    fn the_replay_memory_limit_is_checked_and_arrives_in_bytes() {
        assert_eq!(parse(&[]).map(|s| s.replay_memory_limit).ok(), Some(32 << 20), "32 MiB by default");
        assert_eq!(parse(&["--replay-memory-limit-mib=3"]).map(|s| s.replay_memory_limit).ok(), Some(3 << 20));
        let zero = problems_for(&["--replay-memory-limit-mib=0"]);
        assert!(matches!(&zero[..], [line] if line.starts_with("--replay-memory-limit-mib is 0")), "{zero:?}");
        let huge = problems_for(&[&format!("--replay-memory-limit-mib={}", u64::MAX)]);
        assert!(matches!(&huge[..], [line] if line.contains("more than this machine")), "{huge:?}");
    }

    #[test]
    fn signups_default_to_open_on_loopback_and_invite_elsewhere() {
        let policy = |flags: &[&str]| parse(flags).map(|s| s.site.signups).ok();
        assert_eq!(policy(&[]), Some(SignupPolicy::Open));
        let public = ["--listen", "0.0.0.0:8080", "--public-origin", "https://r.example"];
        assert_eq!(policy(&public), Some(SignupPolicy::Invite));
        assert_eq!(policy(&[&public[..], &["--signups", "open"]].concat()), Some(SignupPolicy::Open));
        assert_eq!(policy(&["--signups", "closed"]), Some(SignupPolicy::Closed));
    }

    #[test]
    fn smtp_flags_go_together_and_are_checked_without_echoing_the_url() {
        let found = problems_for(&["--smtp-url=smtp://user:hunter22@mail.example"]);
        assert!(matches!(&found[..], [line] if line.contains("go together")), "{found:?}");
        let found = problems_for(&["--smtp-url=ftp://user:hunter22@mail.example", "--smtp-from=not an address"]);
        assert_eq!(found.len(), 2, "{found:?}");
        assert!(found.iter().all(|l| !l.contains("hunter22")), "{found:?}");
        let ok = parse(&["--smtp-url=smtps://u:p@mail.example", "--smtp-from=Roost <roost@example.com>"]);
        assert!(ok.is_ok_and(|s| s.auth.mail.is_some()));
        assert!(parse(&[]).is_ok_and(|s| s.auth.mail.is_none()), "off by default");
    }

    #[test]
    fn a_short_metrics_token_is_refused() {
        assert_eq!(problems_for(&["--metrics-token", "short"]).len(), 1);
        assert!(problems_for(&["--metrics-token", "a-long-enough-token"]).is_empty());
    }

    #[test]
    fn origins_and_headers_arrive_parsed() {
        let Ok(settings) = parse(&[
            "--public-origin",
            "HTTPS://Roost.Example:443/",
            "--allowed-origins",
            "http://localhost:5173",
            "--client-ip-header",
            "Fly-Client-IP",
        ]) else {
            panic!("valid flags")
        };
        assert_eq!(settings.site.public_origin, "https://roost.example");
        assert!(settings.site.secure_cookies);
        assert_eq!(settings.site.allowed_origins, ["https://roost.example", "http://localhost:5173"]);
        assert_eq!(settings.site.client_ip_header.as_ref().map(HeaderName::as_str), Some("fly-client-ip"));
    }

    #[test]
    fn the_fly_provider_needs_its_flags_and_checks_them_at_once() {
        let found = problems_for(&["--agent-provider=fly"]);
        assert_eq!(found.len(), 4, "{found:#?}");
        for flag in ["--fly-api-token", "--fly-org", "--fly-image", "--fly-regions"] {
            assert!(found.iter().any(|l| l.starts_with("--agent-provider fly needs") && l.contains(flag)), "{flag}");
        }
        let token = "fm2_very-secret-token";
        let found = problems_for(&[
            "--agent-provider=fly",
            &format!("--fly-api-token={token}"),
            "--fly-org=acme",
            "--fly-image=registry.example/openclaw@sha256:00",
            "--fly-regions=iad,us,Ams",
            "--fly-api-base=ftp://x",
            "--fly-agent-address=http://{app}/",
            "--fly-machine-size=huge",
        ]);
        assert_eq!(found.len(), 5, "{found:#?}");
        for start in [
            "--fly-regions: \"us\"",
            "--fly-regions: \"Ams\"",
            "--fly-api-base",
            "--fly-agent-address",
            "--fly-machine-size",
        ] {
            assert!(found.iter().any(|l| l.starts_with(start)), "{start}: {found:#?}");
        }
        assert!(found.iter().all(|l| !l.contains(token)), "the token is never in a problem line");

        let Ok(settings) = parse(&[
            "--agent-provider=fly",
            &format!("--fly-api-token={token}"),
            "--fly-org=acme",
            "--fly-image=img",
            "--fly-regions=iad, ord",
        ]) else {
            panic!("valid fly flags")
        };
        let agents::Runner::Fly(fly) = settings.agents.runner else { panic!("the fly runner") };
        assert_eq!(fly.regions, ["iad", "ord"]);
        assert_eq!(fly.api_base, provisioner::fly::DEFAULT_BASE_URL);
        assert_eq!(fly.agent_address, provisioner::fly::DEFAULT_AGENT_ADDRESS);
        assert_eq!((fly.guest.cpus, fly.guest.memory_mb), (2, 2048));
        assert_eq!(settings.agents.limits.max_agents, usize::MAX);
    }

    #[test]
    fn stripe_flags_are_checked_together_and_never_echoed() {
        let plans = concat!(env!("CARGO_MANIFEST_DIR"), "/../billing/plans.example.toml");
        let plans = format!("--plans={plans}");
        let found = problems_for(&["--stripe-secret-key=pk_test_not_a_secret_key"]);
        assert_eq!(found.len(), 3, "{found:#?}");
        assert!(found.iter().all(|l| !l.contains("pk_test_not")), "{found:#?}");
        assert!(found[0].contains("sk_… or rk_…") && found[1].contains("--stripe-webhook-secret"), "{found:#?}");
        assert!(found[2].contains("--plans"), "{found:#?}");
        let found = problems_for(&["--stripe-webhook-secret=whsec_abcdefgh", "--stripe-api-base=ftp://x"]);
        assert_eq!(found.len(), 2, "{found:#?}");
        let ok = [plans.as_str(), "--stripe-secret-key=sk_test_abcdefgh", "--stripe-webhook-secret=whsec_abcdefgh"];
        let Ok(settings) = parse(&ok) else { panic!("valid Stripe flags") };
        let stripe = settings.stripe.expect("billing is on");
        assert_eq!((stripe.api_base.as_str(), stripe.livemode), ("https://api.stripe.com", false));
        assert!(parse(&[]).is_ok_and(|s| s.stripe.is_none()), "off by default");
    }

    #[test]
    fn every_problem_is_reported_at_once() {
        let found = problems_for(&[
            "--public-origin=ftp://x",
            "--allowed-origins=https://ok.example/path",
            "--client-ip-header=bad header",
            "--clerk-webhook-secret=whsec_???",
            "--disable-local-accounts",
            "--llm-openai-api-key=sk-1",
        ]);
        assert_eq!(found.len(), 6, "{found:#?}");
        for start in ["--public-origin", "--allowed-origins", "--client-ip-header", "--clerk-webhook-secret"] {
            assert!(found.iter().any(|l| l.starts_with(start)), "{start}: {found:#?}");
        }
        assert!(found.iter().any(|l| l.starts_with("--disable-local-accounts needs Clerk")));
        assert!(found.iter().any(|l| l.starts_with("--llm-openai-api-key needs --llm-openai-base-url")));
    }
}
