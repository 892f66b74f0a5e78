//! The request timeout. `/llm/*` is exempt: a model can take minutes before its first byte, and
//! the proxy bounds its provider's silences itself (`--llm-upstream-timeout-secs`). So is an
//! upload to the workspace (`PUT /api/files/content`): 100 MB takes longer than this on a slow
//! line, and its body is bounded by chunk and in whole (`crate::workspace::upload`). And so is a
//! restore (`POST /api/import`): a 1 GiB upload, then stopping the agent and unpacking; its
//! upload is bounded the same way (`crate::export::upload`) and its stop by the provider's own
//! timeouts.

use std::time::Duration;

use axum::extract::Request;
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

pub async fn limit(request: Request, next: Next) -> Response {
    let (method, path) = (request.method(), request.uri().path());
    let upload = (method == axum::http::Method::PUT && path == "/api/files/content")
        || (method == axum::http::Method::POST && path == "/api/import");
    if upload || request.uri().path().starts_with("/llm/") {
        return next.run(request).await;
    }
    match tokio::time::timeout(REQUEST_TIMEOUT, next.run(request)).await {
        Ok(response) => response,
        Err(_) => StatusCode::REQUEST_TIMEOUT.into_response(),
    }
}
