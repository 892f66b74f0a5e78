//! The request timeout. `/llm/*` is exempt: a model can take minutes before its first byte, and
//! the proxy bounds its provider's silences itself (`--llm-upstream-timeout-secs`). So is an
//! upload to the workspace (`PUT /api/files/content`): 100 MB takes longer than this on a slow
//! line, and its body is bounded by chunk and in whole (`crate::workspace::upload`). And so is a
//! restore (`POST /api/import`): a 1 GiB upload, then stopping the agent and unpacking; its
//! upload is bounded the same way (`crate::export::upload`) and its stop by the provider's own
//! timeouts. And so is a backup (`GET /api/export`): on Fly a sleeping machine is woken first
//! and its sidecar writes the whole archive before the first byte, bounded by the provider's
//! start and ready deadlines and the sidecar call's own timeouts (`provisioner::fly::backups`).
//! And so is connecting a bot (`POST /api/integrations/{channel}`): the first Discord
//! bot restarts the agent's gateway to load its plugin, and the connect waits for it within its
//! own bounds (`routes::integrations`: 10 s per provider call, 20 s per agent call, 90 s for the
//! restart, 20 s for the bot's status).

use std::time::Duration;

use axum::extract::Request;
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

pub async fn limit(request: Request, next: Next) -> Response {
    let (method, path) = (request.method(), request.uri().path());
    let upload = (method == axum::http::Method::PUT && path == "/api/files/content")
        || (method == axum::http::Method::POST && path == "/api/import")
        || (method == axum::http::Method::GET && path == "/api/export")
        || (method == axum::http::Method::POST && is_bot_connect(path));
    if upload || request.uri().path().starts_with("/llm/") {
        return next.run(request).await;
    }
    match tokio::time::timeout(REQUEST_TIMEOUT, next.run(request)).await {
        Ok(response) => response,
        Err(_) => crate::error::AppError::new(
            StatusCode::REQUEST_TIMEOUT,
            "request_timeout",
            "This took too long, so it was stopped. Try again in a moment.",
        )
        .into_response(),
    }
}

/// `/api/integrations/<channel>` itself, not its `test`, `policy` or `pairing` routes.
fn is_bot_connect(path: &str) -> bool {
    path.strip_prefix("/api/integrations/").is_some_and(|channel| !channel.is_empty() && !channel.contains('/'))
}

#[cfg(test)]
mod tests {
    #[test]
    fn only_the_bot_connect_itself_is_exempt() {
        assert!(super::is_bot_connect("/api/integrations/discord"));
        assert!(!super::is_bot_connect("/api/integrations/discord/test"));
        assert!(!super::is_bot_connect("/api/integrations/"));
        assert!(!super::is_bot_connect("/api/integrationsx"));
    }
}
