//! Who is calling `/llm/*`: an agent, by its per-user `rak_` credential. Nothing else opens these
//! routes — no session cookie, no `rst_` API token — so model credit is spent only by agents,
//! and an agent's credential opens nothing but this proxy.

use axum::http::{HeaderMap, StatusCode, header};

use super::LlmApi;
use crate::agent_credentials::verify_llm_credential;
use crate::app::App;
use crate::db::users;
use crate::domain::UserId;
use crate::error::{AppError, AppResult};

/// The calling agent's user: `Authorization: Bearer rak_…`, or for Anthropic's API also its
/// own `x-api-key: rak_…`. The user must still exist.
pub async fn authenticate(app: &App, headers: &HeaderMap, api: LlmApi) -> AppResult<UserId> {
    let presented = bearer(headers).or_else(|| match api {
        LlmApi::Anthropic => header_text(headers, "x-api-key"),
        LlmApi::OpenAi => None,
    });
    let Some(user) = presented.and_then(|c| verify_llm_credential(&app.secret, c)) else {
        tracing::debug!("rejected: no genuine LLM credential");
        return Err(refused());
    };
    if users::find_by_id(&*app.db.conn()?, &user).await?.is_none() {
        tracing::debug!("rejected: LLM credential of a deleted user");
        return Err(refused());
    }
    app.llm_limiter.check(&user)?;
    Ok(user)
}

fn bearer(headers: &HeaderMap) -> Option<&str> {
    header_text(headers, header::AUTHORIZATION.as_str())?.strip_prefix("Bearer ")
}

fn header_text<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok()).map(str::trim).filter(|v| !v.is_empty())
}

fn refused() -> AppError {
    AppError::new(
        StatusCode::UNAUTHORIZED,
        "invalid_llm_credential",
        "This route needs the agent's Roost LLM credential (rak_…).",
    )
}
