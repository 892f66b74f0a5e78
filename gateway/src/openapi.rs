//! The OpenAPI 3.1 document served at `/api/openapi.json`. Its paths come from the handlers'
//! `#[utoipa::path]` attributes, collected by the same `OpenApiRouter` that builds the `/api`
//! router (see `routes::api_router`), so a route cannot be added without its description.

#![allow(dead_code)]

use serde_json::Value;
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, ToSchema};

/// The document's frame: info and security schemes. The paths are added by the router.
pub fn base() -> utoipa::openapi::OpenApi {
    let mut openapi = utoipa::openapi::OpenApiBuilder::new().build();
    Security.modify(&mut openapi);
    openapi
}

struct Security;

impl Modify for Security {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        openapi.info.title = "Roost API".into();
        openapi.info.version = env!("CARGO_PKG_VERSION").into();
        openapi.info.description = Some(
            "Roost's HTTP API. Scripts authenticate with an API token (`Authorization: Bearer rst_…`); \
             the web app with its session cookie."
                .into(),
        );
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "api_token",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).bearer_format("rst_…").build()),
        );
        components
            .add_security_scheme("session", SecurityScheme::ApiKey(ApiKey::Cookie(ApiKeyValue::new("roost_session"))));
    }
}

/// Every error: `{"error": {"code", "message"}}`; the message is a sentence for people.
#[derive(ToSchema)]
pub struct ErrorBody {
    error: ErrorDetail,
}

#[derive(ToSchema)]
pub struct ErrorDetail {
    /// Stable, for programs (`invalid_prompt`, `rate_limited`, …).
    code: String,
    /// For people.
    message: String,
}

/// A JSON object whose fields the description names.
#[derive(ToSchema)]
#[schema(value_type = Object)]
pub struct Object(Value);

/// A task of the task API.
#[derive(ToSchema)]
pub struct Task {
    id: String,
    /// queued, running, completed, failed or cancelled.
    status: String,
    prompt: String,
    /// The chat it runs in.
    session: String,
    webhook_url: Option<String>,
    /// The agent's final reply, once completed.
    text: Option<String>,
    tool_calls: Vec<ToolCall>,
    /// Credits of the model calls made while it ran.
    credits_used: i64,
    /// Why it failed or was cancelled, in a sentence.
    error: Option<String>,
    created_at: i64,
    started_at: Option<i64>,
    finished_at: Option<i64>,
}

/// A tool the agent called during a task.
#[derive(ToSchema)]
pub struct ToolCall {
    id: String,
    name: String,
    args: Object,
    /// running, ok or failed.
    status: String,
}
