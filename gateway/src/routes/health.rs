use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use serde_json::{Value, json};

use crate::app::AppState;
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

pub async fn metrics(state: AppState) -> impl IntoResponse {
    (StatusCode::OK, [(header::CONTENT_TYPE, "text/plain; version=0.0.4")], state.metrics.render())
}
