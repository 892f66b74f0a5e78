//! The request timeout. `/llm/*` is exempt: a model can take minutes before its first byte, and
//! the proxy bounds its provider's silences itself (`--llm-upstream-timeout-secs`).

use std::time::Duration;

use axum::extract::Request;
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

pub async fn limit(request: Request, next: Next) -> Response {
    if request.uri().path().starts_with("/llm/") {
        return next.run(request).await;
    }
    match tokio::time::timeout(REQUEST_TIMEOUT, next.run(request)).await {
        Ok(response) => response,
        Err(_) => StatusCode::REQUEST_TIMEOUT.into_response(),
    }
}
