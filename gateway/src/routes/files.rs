//! The agent's workspace files for its user (session or API token): list, download, upload
//! (a raw streamed body of at most 100 MB) and delete. Paths are relative to the workspace and
//! checked in `roost_agent::workspace`; answers are built in `crate::workspace`. With the local
//! provider the files are on disk, so a stopped agent's are served too; on Fly the machine must
//! be running (a stopped one is not woken: the answer says to start it).

use axum::body::Body;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use provisioner::files::{MAX_UPLOAD_BYTES, WorkspacePath};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::app::AppState;
use crate::auth::AuthUser;
use crate::error::{AppError, AppResult};
use crate::json::Query;
use crate::workspace::{app_error, content_type, upload};

#[derive(Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// A folder, relative to the workspace (default: the workspace itself).
    path: Option<String>,
}

#[derive(Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ContentQuery {
    /// A file, relative to the workspace.
    path: String,
    /// `true`: always as an attachment (default: images and text inline).
    download: Option<bool>,
}

#[derive(Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct DeleteQuery {
    /// A file, symlink or folder, relative to the workspace.
    path: String,
    /// `true`: a folder and everything in it (default: only an empty folder).
    recursive: Option<bool>,
}

fn parse(path: &str) -> AppResult<WorkspacePath> {
    WorkspacePath::parse(path).map_err(|e| AppError::bad_request("bad_path", e.sentence()))
}

/// A file path names a file: not the workspace itself.
fn parse_file(path: &str) -> AppResult<WorkspacePath> {
    let path = parse(path)?;
    if path.is_root() {
        return Err(AppError::bad_request("bad_path", "Name a file in the workspace."));
    }
    Ok(path)
}

#[utoipa::path(get, operation_id = "files_list", path = "/files", tag = "files", params(ListQuery), security(("session" = []), ("api_token" = [])), responses((status = 200, description = "`{path, entries: [{name, kind, size, modified}], truncated}`", body = crate::openapi::Object), (status = 400, description = "Invalid path", body = crate::openapi::ErrorBody), (status = 401, description = "Not signed in", body = crate::openapi::ErrorBody), (status = 403, description = "Leads outside the workspace", body = crate::openapi::ErrorBody), (status = 404, description = "Not found", body = crate::openapi::ErrorBody), (status = 409, description = "Not a folder, or the agent's machine is stopped", body = crate::openapi::ErrorBody)))]
pub async fn list(state: AppState, auth: AuthUser, Query(q): Query<ListQuery>) -> AppResult<axum::Json<Value>> {
    let path = parse(q.path.as_deref().unwrap_or_default())?;
    let listing = state.machines.list_files(&auth.user_id, &path).await.map_err(app_error)?;
    let entries: Vec<Value> = listing
        .entries
        .iter()
        .map(|e| json!({ "name": e.name, "kind": e.kind.as_str(), "size": e.size, "modified": e.modified }))
        .collect();
    Ok(axum::Json(json!({ "path": path.as_str(), "entries": entries, "truncated": listing.truncated })))
}

#[utoipa::path(get, operation_id = "files_download", path = "/files/content", tag = "files", params(ContentQuery), security(("session" = []), ("api_token" = [])), responses((status = 200, description = "The file's bytes, streamed", content_type = "application/octet-stream"), (status = 400, description = "Invalid path", body = crate::openapi::ErrorBody), (status = 401, description = "Not signed in", body = crate::openapi::ErrorBody), (status = 403, description = "Leads outside the workspace", body = crate::openapi::ErrorBody), (status = 404, description = "Not found", body = crate::openapi::ErrorBody), (status = 409, description = "Not a file, or the agent's machine is stopped", body = crate::openapi::ErrorBody)))]
pub async fn download(state: AppState, auth: AuthUser, Query(q): Query<ContentQuery>) -> AppResult<Response> {
    let path = parse_file(&q.path)?;
    let file = state.machines.read_file(&auth.user_id, &path).await.map_err(app_error)?;
    let served = content_type::for_name(path.name(), q.download.unwrap_or(false));
    let mut headers = HeaderMap::new();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(served.content_type));
    headers.insert(header::CONTENT_LENGTH, HeaderValue::from(file.size));
    let disposition = content_type::disposition_header(served.disposition, path.name());
    if let Ok(value) = HeaderValue::from_str(&disposition) {
        headers.insert(header::CONTENT_DISPOSITION, value);
    }
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static("sandbox; default-src 'none'"));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("private, no-store"));
    Ok((headers, Body::from_stream(file.body)).into_response())
}

#[utoipa::path(put, operation_id = "files_upload", path = "/files/content", tag = "files", params(("path" = String, Query, description = "The file, relative to the workspace; its folder must exist")), request_body(content = String, description = "The file's bytes (at most 100 MB), streamed", content_type = "application/octet-stream"), security(("session" = []), ("api_token" = [])), responses((status = 201, description = "`{path, size}`", body = crate::openapi::Object), (status = 400, description = "Invalid path", body = crate::openapi::ErrorBody), (status = 401, description = "Not signed in", body = crate::openapi::ErrorBody), (status = 403, description = "Leads outside the workspace", body = crate::openapi::ErrorBody), (status = 404, description = "The folder does not exist", body = crate::openapi::ErrorBody), (status = 409, description = "A folder is there, or the agent's machine is stopped", body = crate::openapi::ErrorBody), (status = 413, description = "Over 100 MB; nothing is stored", body = crate::openapi::ErrorBody)))]
pub async fn upload(
    state: AppState,
    auth: AuthUser,
    Query(q): Query<UploadQuery>,
    headers: HeaderMap,
    body: Body,
) -> AppResult<(StatusCode, axum::Json<Value>)> {
    let path = parse_file(&q.path)?;
    let declared =
        headers.get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > MAX_UPLOAD_BYTES) {
        return Err(app_error(provisioner::files::FsError::TooLarge.into()));
    }
    let size = state.machines.write_file(&auth.user_id, &path, upload::body_stream(body)).await.map_err(app_error)?;
    Ok((StatusCode::CREATED, axum::Json(json!({ "path": path.as_str(), "size": size }))))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UploadQuery {
    path: String,
}

#[utoipa::path(delete, operation_id = "files_delete", path = "/files", tag = "files", params(DeleteQuery), security(("session" = []), ("api_token" = [])), responses((status = 200, description = "`{deleted: true}`", body = crate::openapi::Object), (status = 400, description = "Invalid path", body = crate::openapi::ErrorBody), (status = 401, description = "Not signed in", body = crate::openapi::ErrorBody), (status = 403, description = "Leads outside the workspace", body = crate::openapi::ErrorBody), (status = 404, description = "Not found", body = crate::openapi::ErrorBody), (status = 409, description = "A folder that is not empty, or the agent's machine is stopped", body = crate::openapi::ErrorBody)))]
pub async fn delete(state: AppState, auth: AuthUser, Query(q): Query<DeleteQuery>) -> AppResult<axum::Json<Value>> {
    let path = parse_file(&q.path)?;
    let recursive = q.recursive.unwrap_or(false);
    state.machines.delete_file(&auth.user_id, &path, recursive).await.map_err(app_error)?;
    Ok(axum::Json(json!({ "deleted": true })))
}
