//! The route table. Handlers live in one module per resource.

mod admin;
mod auth;
mod billing;
mod export;
mod files;
mod health;
mod integrations;
mod llm;
mod llm_key;
mod machine;
mod me;
mod sessions;
mod tasks;
mod tokens;
mod web;
mod webhooks;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{any, get, post};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::app::AppState;
use crate::error::AppError;
pub(crate) use web::file as web_file;

/// JSON bodies on the API are small; webhooks get more room; model calls carry an agent's whole
/// context (a ~50 KB system prompt plus history).
const API_BODY_LIMIT: usize = 64 * 1024;
const WEBHOOK_BODY_LIMIT: usize = 1024 * 1024;
pub const LLM_BODY_LIMIT: usize = 4 * 1024 * 1024;

/// The `/api` routes and their OpenAPI document, built from one list: `routes!` takes only
/// handlers with a `#[utoipa::path]`, so a route cannot be added here without its description.
/// (Never `.route(…)` in this function: the `openapi` test reads it to make sure.)
fn api_router() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(crate::openapi::base())
        .routes(routes!(auth::signup))
        .routes(routes!(auth::login))
        .routes(routes!(auth::logout))
        .routes(routes!(auth::session_state))
        .routes(routes!(auth::policy))
        .routes(routes!(auth::reset_password))
        .routes(routes!(auth::forgot_password))
        .routes(routes!(me::get, me::delete))
        .routes(routes!(me::change_password))
        .routes(routes!(me::change_email))
        .routes(routes!(me::sign_out_others))
        .routes(routes!(llm_key::get, llm_key::put, llm_key::delete))
        .routes(routes!(billing::get))
        .routes(routes!(billing::set_budget))
        .routes(routes!(billing::set_auto_refill))
        .routes(routes!(billing::checkout))
        .routes(routes!(billing::portal))
        .routes(routes!(machine::get))
        .routes(routes!(machine::stop))
        .routes(routes!(machine::restart))
        .routes(routes!(export::export))
        .routes(routes!(export::import))
        .routes(routes!(tokens::list, tokens::create))
        .routes(routes!(tokens::revoke))
        .routes(routes!(tokens::rotate_webhook_secret))
        .routes(routes!(sessions::list, sessions::create))
        .routes(routes!(sessions::change, sessions::delete))
        .routes(routes!(sessions::history))
        .routes(routes!(integrations::list))
        .routes(routes!(integrations::connect, integrations::disconnect))
        .routes(routes!(integrations::test))
        .routes(routes!(integrations::set_policy))
        .routes(routes!(integrations::pairing))
        .routes(routes!(integrations::decide))
        .routes(routes!(files::list, files::delete))
        .routes(routes!(files::download, files::upload))
        .routes(routes!(tasks::list, tasks::create))
        .routes(routes!(tasks::get))
        .routes(routes!(tasks::cancel))
        .routes(routes!(admin::users))
        .routes(routes!(admin::user))
        .routes(routes!(admin::suspend))
        .routes(routes!(admin::unsuspend))
        .routes(routes!(admin::restart))
        .routes(routes!(admin::reprovision))
        .routes(routes!(admin::adjust_credits))
        .routes(routes!(admin::list_invites, admin::create_invite))
        .routes(routes!(admin::revoke_invite))
        .routes(routes!(admin::audit))
        .routes(routes!(openapi_json))
}

/// The OpenAPI document of every `/api` route.
pub fn openapi() -> utoipa::openapi::OpenApi {
    OpenApiRouter::<AppState>::new().nest("/api", api_router()).into_openapi()
}

static OPENAPI_JSON: std::sync::OnceLock<String> = std::sync::OnceLock::new();

/// This document: OpenAPI 3.1, describing every `/api` route.
#[utoipa::path(get, operation_id = "openapi_json", path = "/openapi.json", tag = "meta",
    responses((status = 200, description = "The OpenAPI 3.1 document", body = crate::openapi::Object)))]
async fn openapi_json() -> impl axum::response::IntoResponse {
    let body = OPENAPI_JSON.get_or_init(|| openapi().to_json().unwrap_or_else(|_| "{}".into()));
    ([(axum::http::header::CONTENT_TYPE, "application/json")], body.as_str())
}

pub fn router(state: AppState) -> Router {
    let (api, doc) = OpenApiRouter::new()
        .nest("/api", api_router().fallback(api_not_found).layer(DefaultBodyLimit::max(API_BODY_LIMIT)))
        .split_for_parts();
    let _ = OPENAPI_JSON.set(doc.to_json().unwrap_or_else(|_| "{}".into()));

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

    let mut router = api
        .nest("/webhooks", webhooks)
        .route("/ws", get(crate::relay::upgrade))
        .route("/agent", any(crate::console::handle))
        .route("/agent/", any(crate::console::handle))
        .route("/agent/{*rest}", any(crate::console::handle))
        .nest("/llm", llm)
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz));
    if state.site.metrics.on_main_listener {
        router = router.route("/metrics", get(health::metrics));
    }
    let router = router.fallback(web::serve).method_not_allowed_fallback(method_not_allowed).with_state(state.clone());
    crate::middleware::apply(state, router)
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
