//! The route table. Handlers live in one module per resource.

mod admin;
mod auth;
mod billing;
mod health;
mod integrations;
mod llm;
mod machine;
mod me;
mod sessions;
mod tokens;
mod web;
mod webhooks;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{delete, get, patch, post, put};

use crate::app::AppState;
use crate::error::AppError;

/// JSON bodies on the API are small; webhooks get more room; model calls carry an agent's whole
/// context (a ~50 KB system prompt plus history).
const API_BODY_LIMIT: usize = 64 * 1024;
const WEBHOOK_BODY_LIMIT: usize = 1024 * 1024;
pub const LLM_BODY_LIMIT: usize = 4 * 1024 * 1024;

pub fn router(state: AppState) -> Router {
    let api = Router::new()
        .route("/auth/signup", post(auth::signup))
        .route("/auth/login", post(auth::login))
        .route("/auth/logout", post(auth::logout))
        .route("/auth/session", get(auth::session_state))
        .route("/auth/policy", get(auth::policy))
        .route("/auth/reset", post(auth::reset_password))
        .route("/auth/forgot", post(auth::forgot_password))
        .route("/me", get(me::get).delete(me::delete))
        .route("/me/password", post(me::change_password))
        .route("/me/email", post(me::change_email))
        .route("/me/sign-out-others", post(me::sign_out_others))
        .route("/billing", get(billing::get))
        .route("/billing/budget", put(billing::set_budget))
        .route("/billing/auto-refill", put(billing::set_auto_refill))
        .route("/billing/checkout", post(billing::checkout))
        .route("/billing/portal", post(billing::portal))
        .route("/machine", get(machine::get))
        .route("/machine/stop", post(machine::stop))
        .route("/machine/restart", post(machine::restart))
        .route("/tokens", get(tokens::list).post(tokens::create))
        .route("/tokens/{id}", delete(tokens::revoke))
        .route("/sessions", get(sessions::list).post(sessions::create))
        .route("/sessions/{key}", patch(sessions::change).delete(sessions::delete))
        .route("/sessions/{key}/history", get(sessions::history))
        .route("/integrations", get(integrations::list))
        .route("/integrations/{channel}", post(integrations::connect).delete(integrations::disconnect))
        .route("/integrations/{channel}/test", post(integrations::test))
        .route("/integrations/{channel}/policy", put(integrations::set_policy))
        .route("/integrations/{channel}/pairing", get(integrations::pairing))
        .route("/integrations/{channel}/pairing/{request}/{action}", post(integrations::decide))
        .nest("/admin", admin_routes())
        .fallback(api_not_found)
        .layer(DefaultBodyLimit::max(API_BODY_LIMIT));

    let webhooks = Router::new()
        .route("/clerk", post(webhooks::clerk))
        .route("/stripe", post(webhooks::stripe))
        .layer(DefaultBodyLimit::max(WEBHOOK_BODY_LIMIT));

    // Agents authenticate with their LLM credential only; see `crate::llm`.
    let llm = Router::new()
        .route("/openai/v1/chat/completions", post(llm::openai_chat_completions))
        .route("/openai/v1/models", get(llm::openai_models))
        .route("/anthropic/v1/messages", post(llm::anthropic_messages))
        .fallback(api_not_found)
        .layer(DefaultBodyLimit::max(LLM_BODY_LIMIT));

    let mut router = Router::new()
        .nest("/api", api)
        .nest("/webhooks", webhooks)
        .route("/ws", get(crate::relay::upgrade))
        .nest("/llm", llm)
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz));
    if state.site.metrics.on_main_listener {
        router = router.route("/metrics", get(health::metrics));
    }
    let router = router.fallback(web::serve).method_not_allowed_fallback(method_not_allowed).with_state(state.clone());
    crate::middleware::apply(state, router)
}

fn admin_routes() -> Router<AppState> {
    Router::new()
        .route("/users", get(admin::users))
        .route("/users/{id}", get(admin::user))
        .route("/users/{id}/suspend", post(admin::suspend))
        .route("/users/{id}/unsuspend", post(admin::unsuspend))
        .route("/users/{id}/restart", post(admin::restart))
        .route("/users/{id}/reprovision", post(admin::reprovision))
        .route("/users/{id}/credits", post(admin::adjust_credits))
        .route("/invites", get(admin::list_invites).post(admin::create_invite))
        .route("/invites/{id}", delete(admin::revoke_invite))
        .route("/audit", get(admin::audit))
}

/// The `--metrics-listen` listener: `/metrics` and nothing else.
pub fn metrics_router(state: AppState) -> Router {
    Router::new().route("/metrics", get(health::metrics)).fallback(api_not_found).with_state(state)
}

async fn api_not_found() -> AppError {
    AppError::not_found("There is no such API route. Check the address.")
}

async fn method_not_allowed() -> AppError {
    AppError::new(
        axum::http::StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        "This route does not accept that method.",
    )
}
