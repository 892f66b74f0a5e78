//! Cross-site request forgery: unsafe methods from a browser must come from an allowed origin.

use axum::extract::{Request, State};
use axum::http::{Method, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::app::AppState;
use crate::error::AppError;

pub async fn check(State(state): State<AppState>, request: Request, next: Next) -> Response {
    if is_safe(request.method())
        || request.uri().path().starts_with("/webhooks/")
        || request.uri().path().starts_with("/llm/")
        || request.headers().contains_key(header::AUTHORIZATION)
    {
        // Webhooks authenticate by signature; a Bearer header is never sent by a browser on its own;
        // `/llm/*` takes only an agent credential in a header (`x-api-key` included), never a cookie.
        return next.run(request).await;
    }
    match verdict(&state, &request) {
        Ok(()) => next.run(request).await,
        Err(err) => err.into_response(),
    }
}

fn is_safe(method: &Method) -> bool {
    matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
}

fn verdict(state: &AppState, request: &Request) -> Result<(), AppError> {
    let headers = request.headers();
    let origin = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok());
    if let Some(origin) = origin {
        return if state.settings.origin_allowed(origin) {
            Ok(())
        } else {
            tracing::debug!(origin, "CSRF: origin not allowed");
            Err(AppError::forbidden("cross_origin", "cross-origin request refused"))
        };
    }
    match headers.get("sec-fetch-site").and_then(|v| v.to_str().ok()) {
        Some("same-origin") => Ok(()),
        _ => Err(AppError::forbidden(
            "cross_origin",
            "request must come from this site (send an allowed Origin header, or use a Bearer token)",
        )),
    }
}
