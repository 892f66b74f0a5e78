//! `GET /api/export`: download a backup of your agent; `POST /api/import`: restore one. See
//! [`crate::export`].

use axum::body::Body;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use provisioner::ProvisionError;
use serde::Deserialize;
use serde_json::json;

use crate::app::AppState;
use crate::auth::AuthUser;
use crate::auth::SessionUser;
use crate::error::{AppError, AppResult};
use crate::json::Query;
use crate::machines::BackupError;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImportQuery {
    /// Must be `replace`: a restore replaces the agent's chats and files.
    confirm: Option<String>,
}

#[utoipa::path(get, operation_id = "export_get", path = "/export", tag = "agent", security(("session" = []), ("api_token" = [])), responses((status = 200, description = "The backup, `application/gzip` (a tar.gz whose first entry is `manifest.json`)"), (status = 401, description = "Not signed in", body = crate::openapi::ErrorBody), (status = 409, description = "A backup or restore is running", body = crate::openapi::ErrorBody), (status = 501, description = "The provider cannot make backups", body = crate::openapi::ErrorBody), (status = 503, description = "The agent could not be woken, or the backup failed", body = crate::openapi::ErrorBody)))]
pub async fn export(state: AppState, auth: AuthUser) -> AppResult<Response> {
    let running = state.backups.begin(&auth.user_id)?;
    let chunks = state.machines.export(&auth.user_id).await.map_err(|e| backup_error(&auth, e))?;
    // The guard travels with the stream: the next backup of this user waits for this one.
    let stream = futures_util::stream::unfold((chunks, running), |(mut chunks, running)| async move {
        chunks.recv().await.map(|chunk| (chunk, (chunks, running)))
    });
    let disposition = format!("attachment; filename=\"roost-backup-{}.tar.gz\"", utc_date(crate::domain::now_secs()));
    let mut res = Body::from_stream(stream).into_response();
    res.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/gzip"));
    res.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    if let Ok(value) = HeaderValue::from_str(&disposition) {
        res.headers_mut().insert(header::CONTENT_DISPOSITION, value);
    }
    Ok(res)
}

#[utoipa::path(post, operation_id = "import_post", path = "/import", tag = "agent", params(("confirm" = String, Query, description = "`replace`: the agent's chats and files are replaced")), request_body(content = crate::openapi::Object, description = "The backup file (`application/gzip`), at most 1 GiB of files", content_type = "application/gzip"), security(("session" = [])), responses((status = 200, description = "Restored; the agent is starting: `{restored: {files, bytes, roost_version, openclaw_version, created_unix}}`", body = crate::openapi::Object), (status = 400, description = "Not confirmed, or the upload failed", body = crate::openapi::ErrorBody), (status = 401, description = "Not signed in", body = crate::openapi::ErrorBody), (status = 403, description = "Needs a browser session, not an API token", body = crate::openapi::ErrorBody), (status = 409, description = "A backup or restore is running", body = crate::openapi::ErrorBody), (status = 413, description = "Larger than a backup can be", body = crate::openapi::ErrorBody), (status = 422, description = "The archive was refused; nothing changed", body = crate::openapi::ErrorBody), (status = 503, description = "The agent could not be stopped or woken, or the restore failed; nothing changed", body = crate::openapi::ErrorBody)))]
pub async fn import(
    state: AppState,
    SessionUser(auth): SessionUser,
    Query(query): Query<ImportQuery>,
    headers: HeaderMap,
    body: Body,
) -> AppResult<impl IntoResponse> {
    if query.confirm.as_deref() != Some("replace") {
        return Err(AppError::bad_request(
            "confirm_replace",
            "A restore replaces your agent's chats and files. Confirm it with confirm=replace.",
        ));
    }
    if let Some(refusal) = state.machines.start_refusal(&auth.user_id).await {
        return Err(AppError::forbidden(refusal.code, refusal.message));
    }
    let _running = state.backups.begin(&auth.user_id)?;
    let declared = headers.get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse().ok());
    let file = crate::export::receive(body, state.backups.scratch(), declared).await?;
    // Checked whole before the agent is touched: a refused archive changes nothing.
    let (file, manifest) = crate::export::verify(file).await?;
    state.relays.agent_stopped(&auth.user_id);
    let restored = state.machines.import(&auth.user_id, file).await;
    let machines = state.machines.clone();
    let user = auth.user_id.clone();
    // Started again whatever happened: a failed restore left the old state in place.
    tokio::spawn(async move {
        if let Err(e) = machines.ensure_ready(&user).await {
            tracing::warn!(user_id = %user, error = %e, "the agent did not start after a restore");
        }
    });
    let restored = restored.map_err(|e| backup_error(&auth, e))?;
    tracing::info!(user_id = %auth.user_id, files = manifest.files.len(), "a backup was restored");
    Ok(axum::Json(json!({ "restored": restored.to_json() })))
}

fn backup_error(auth: &AuthUser, e: BackupError) -> AppError {
    match e {
        BackupError::Agent(e) => AppError::new(StatusCode::SERVICE_UNAVAILABLE, e.code, e.message),
        BackupError::Provider(e) => provider_error(auth, e),
    }
}

fn provider_error(auth: &AuthUser, e: ProvisionError) -> AppError {
    match e {
        ProvisionError::Refused(refusal) => crate::export::refused(refusal),
        ProvisionError::Unsupported(why) => AppError::new(StatusCode::NOT_IMPLEMENTED, "backups_unsupported", why),
        e => {
            let error_id = uuid::Uuid::new_v4().simple().to_string()[..12].to_string();
            tracing::warn!(user_id = %auth.user_id, error_id, error = %e, "a backup or restore failed");
            AppError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "backup_failed",
                format!(
                    "The backup or restore did not complete; nothing was changed. If it keeps happening, give the operator this error id: {error_id}."
                ),
            )
        }
    }
}

/// `YYYY-MM-DD`, in UTC, of a unix time.
fn utc_date(unix_secs: i64) -> String {
    let day = time::OffsetDateTime::from_unix_timestamp(unix_secs).unwrap_or(time::OffsetDateTime::UNIX_EPOCH).date();
    format!("{:04}-{:02}-{:02}", day.year(), u8::from(day.month()), day.day())
}

#[cfg(test)]
mod tests {
    #[test]
    fn backups_are_named_by_their_utc_day() {
        assert_eq!(super::utc_date(0), "1970-01-01");
        assert_eq!(super::utc_date(1_796_169_599), "2026-12-01");
        assert_eq!(super::utc_date(1_796_169_600), "2026-12-02");
        assert_eq!(super::utc_date(951_782_400), "2000-02-29");
    }
}
