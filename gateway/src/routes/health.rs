use axum::http::{HeaderMap, StatusCode, header};
use axum::response::IntoResponse;
use serde_json::{Value, json};

use crate::app::AppState;
use crate::crypto::same_secret;
use crate::error::{AppError, AppResult};

/// The process is up.
pub async fn healthz() -> axum::Json<Value> {
    axum::Json(json!({ "status": "ok" }))
}

/// The process can serve: the database answers.
pub async fn readyz(state: AppState) -> AppResult<axum::Json<Value>> {
    state.db.ping().await.map_err(|e| {
        tracing::warn!(error = %e, "readiness check failed");
        AppError::unavailable("database_unavailable", "the database does not answer", 5)
    })?;
    Ok(axum::Json(json!({ "status": "ready" })))
}

/// Prometheus text, for the holder of `--metrics-token` when one is set.
pub async fn metrics(state: AppState, headers: HeaderMap) -> AppResult<impl IntoResponse> {
    if let Some(token) = &state.site.metrics.token {
        let offered =
            headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).and_then(|v| v.strip_prefix("Bearer "));
        if !offered.is_some_and(|offered| same_secret(offered.trim().as_bytes(), token.expose().as_bytes())) {
            return Err(AppError::new(
                StatusCode::UNAUTHORIZED,
                "unauthenticated",
                "Send the metrics token as a Bearer token to read /metrics.",
            ));
        }
    }
    Ok((StatusCode::OK, [(header::CONTENT_TYPE, "text/plain; version=0.0.4")], state.metrics.render()))
}
