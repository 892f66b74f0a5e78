//! The request timeout. `/llm/*` is exempt: a model can take minutes before its first byte, and
//! the proxy bounds its provider's silences itself (`--llm-upstream-timeout-secs`). So is an
//! upload to the workspace (`PUT /api/files/content`): 100 MB takes longer than this on a slow
//! line, and its body is bounded by chunk and in whole (`crate::workspace::upload`).

use std::time::Duration;

use axum::extract::Request;
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

pub async fn limit(request: Request, next: Next) -> Response {
    let upload = request.method() == axum::http::Method::PUT && request.uri().path() == "/api/files/content";
    if upload || request.uri().path().starts_with("/llm/") {
        return next.run(request).await;
    }
    match tokio::time::timeout(REQUEST_TIMEOUT, next.run(request)).await {
        Ok(response) => response,
        Err(_) => StatusCode::REQUEST_TIMEOUT.into_response(),
    }
}
