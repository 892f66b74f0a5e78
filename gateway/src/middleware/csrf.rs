//! Cross-site request forgery: unsafe methods from a browser must come from an allowed origin.

use axum::extract::{FromRequestParts, Request, State};
use axum::http::{Method, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::app::AppState;
use crate::auth::{AuthUser, bearer_credential};
use crate::error::AppError;

pub async fn check(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let path = request.uri().path();
    if path.starts_with("/webhooks/") || path.starts_with("/llm/") {
        // Webhooks authenticate by signature; `/llm/*` takes only an agent credential in a
        // header (`x-api-key` included), never a cookie.
        return next.run(request).await;
    }
    if bearer_credential(request.headers()).is_some() {
        // A browser never sends a Bearer header on its own, so such a request is exempt, but
        // only as itself: its cookies are dropped, and it must really authenticate.
        let (mut parts, body) = request.into_parts();
        parts.headers.remove(header::COOKIE);
        if !is_safe(&parts.method)
            && let Err(rejection) = AuthUser::from_request_parts(&mut parts, &state).await
        {
            return rejection.into_response();
        }
        return next.run(Request::from_parts(parts, body)).await;
    }
    if is_safe(request.method()) {
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
        return if state.site.origin_allowed(origin) {
            Ok(())
        } else {
            tracing::debug!(origin, "CSRF: origin not allowed");
            Err(AppError::forbidden(
                "cross_origin",
                "That request came from another site and was refused. Reload Roost and try again.",
            ))
        };
    }
    match headers.get("sec-fetch-site").and_then(|v| v.to_str().ok()) {
        Some("same-origin") => Ok(()),
        _ => Err(AppError::forbidden(
            "cross_origin",
            "This request must come from Roost's own pages (send an allowed Origin header, or use an API token).",
        )),
    }
}
