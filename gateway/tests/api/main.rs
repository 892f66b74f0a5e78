//! The gateway's one integration-test binary. Every test runs the real server on 127.0.0.1:0
//! with a fresh database file.

mod headers;
mod helpers;
mod ws;

mod account_deletion;
mod accounts;
mod api_tokens;
mod billing_stripe;
mod browser;
mod browser_billing;
mod clerk;
mod clerk_webhooks;
mod csrf;
mod e2e_credits;
mod e2e_lifecycle;
mod e2e_openclaw;
mod e2e_sandbox;
mod files;
mod fly_client;
mod fly_provider;
mod lifecycle;
mod lifecycle_history;
mod llm_proxy;
mod log_secrets;
mod metrics;
mod migrations;
mod openclaw_link;
mod plumbing;
mod read_paths;
mod relay;
mod relay_limits;
mod relay_resume;
mod relay_trust;
mod revocations;
mod sandbox;
mod sessions;
mod slow_clients;
mod two_instances;
