//! Backups of this machine's agent, for Roost (the router admits only Roost's secret before
//! anything here runs), in [`crate::archive`]'s format:
//!
//! - `GET /roost/export`: the archive of the state dir (platform-owned config, secret files and
//!   logs left out), written whole to an unnamed file on the volume first and then streamed
//!   with its length, so a download cut short is never taken for a whole one
//! - `PUT /roost/import`: the body is an archive of at most [`archive::MAX_ARCHIVE_BYTES`],
//!   streamed to an unnamed file on the volume and checked whole; only then is OpenClaw paused
//!   ([`crate::supervisor::Pause`]), the state replaced (the machine's platform parts kept) and
//!   OpenClaw started again. A refused archive changes nothing and OpenClaw keeps running.
//!   Answers [`archive::Restored`] as JSON.
//!
//! Errors are `{"error": sentence, "code": code}`; no path or system error is in them.

use std::io::{Seek, SeekFrom};
use std::path::{Path, PathBuf};

use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::header::{CONTENT_LENGTH, CONTENT_TYPE, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use serde_json::json;
use tokio::io::AsyncWriteExt;

use crate::archive::{self, Refusal, RestoreError, Versions};
use crate::router::{Body, Context, json as respond};
use crate::{EXPORT_PATH, IMPORT_PATH};

pub async fn handle(req: Request<Incoming>, ctx: &Context) -> Response<Body> {
    match (req.method().clone(), req.uri().path()) {
        (Method::GET, EXPORT_PATH) => export(ctx).await,
        (Method::PUT, IMPORT_PATH) => import(req, ctx).await,
        (_, EXPORT_PATH) => error(StatusCode::METHOD_NOT_ALLOWED, "method", "Use GET for a backup."),
        _ => error(StatusCode::METHOD_NOT_ALLOWED, "method", "Use PUT to restore a backup."),
    }
}

/// Where the unnamed scratch files go: beside the state dir, on the same volume, outside what
/// is exported.
fn scratch(state_dir: &Path) -> PathBuf {
    state_dir.parent().unwrap_or(state_dir).to_path_buf()
}

async fn export(ctx: &Context) -> Response<Body> {
    let state_dir = ctx.state_dir.clone();
    let versions = Versions { roost: env!("CARGO_PKG_VERSION").to_string(), openclaw: ctx.openclaw_version.clone() };
    let written = tokio::task::spawn_blocking(move || -> std::io::Result<(std::fs::File, u64)> {
        std::fs::create_dir_all(&state_dir)?;
        let scratch = scratch(&state_dir);
        let mut out = tempfile::tempfile_in(&scratch)?;
        archive::export(&state_dir, &scratch, &versions, std::io::BufWriter::new(&mut out))?;
        let size = out.seek(SeekFrom::End(0))?;
        out.seek(SeekFrom::Start(0))?;
        Ok((out, size))
    })
    .await;
    match written {
        Ok(Ok((file, size))) => {
            let mut res = crate::workspace_files::download(file, size);
            res.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static("application/gzip"));
            res
        }
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "a backup could not be written");
            error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "export_failed",
                "The backup could not be written on the agent's machine.",
            )
        }
        Err(_) => error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "export_failed",
            "The backup could not be written on the agent's machine.",
        ),
    }
}

async fn import(req: Request<Incoming>, ctx: &Context) -> Response<Body> {
    let declared = req.headers().get(CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > archive::MAX_ARCHIVE_BYTES) {
        return refused(Refusal::TooLarge);
    }
    let Some(mut restoring) = ctx.pause.begin() else {
        return error(StatusCode::CONFLICT, "restore_in_progress", "A restore of this agent is already running.");
    };
    let file = match receive(req.into_body(), scratch(&ctx.state_dir)).await {
        Ok(file) => file,
        Err(answer) => return answer,
    };
    let checked = tokio::task::spawn_blocking(move || {
        let mut file = file;
        archive::verify(&mut file).map(|_| file)
    })
    .await;
    let file = match checked {
        Ok(Ok(file)) => file,
        Ok(Err(e)) => return restore_error(e),
        Err(_) => return not_restored(),
    };
    // Checked whole: only now is OpenClaw touched.
    if !restoring.pause(&ctx.stage).await {
        tracing::warn!("OpenClaw did not stop for a restore in time");
        return error(
            StatusCode::SERVICE_UNAVAILABLE,
            "not_paused",
            "The agent did not stop in time for the restore; nothing was changed.",
        );
    }
    let state_dir = ctx.state_dir.clone();
    let restored = tokio::task::spawn_blocking(move || {
        let mut file = file;
        archive::restore(&mut file, &state_dir)
    })
    .await;
    // OpenClaw starts again on whichever state is there now: the restored one, or the old one.
    drop(restoring);
    match restored {
        Ok(Ok(manifest)) => {
            tracing::info!(files = manifest.files.len(), "a backup was restored");
            respond(StatusCode::OK, manifest.summary().to_json().to_string())
        }
        Ok(Err(e)) => restore_error(e),
        Err(_) => not_restored(),
    }
}

/// Streams the body into an unnamed file in `scratch` (gone once closed), at most
/// [`archive::MAX_ARCHIVE_BYTES`].
async fn receive(mut body: Incoming, scratch: PathBuf) -> Result<std::fs::File, Response<Body>> {
    let file = match tokio::task::spawn_blocking(move || tempfile::tempfile_in(scratch)).await {
        Ok(Ok(file)) => file,
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "no scratch file for a restore");
            return Err(not_restored());
        }
        Err(_) => return Err(not_restored()),
    };
    let mut out = tokio::fs::File::from_std(file);
    let mut total: u64 = 0;
    while let Some(frame) = body.frame().await {
        let Ok(frame) = frame else {
            return Err(error(
                StatusCode::BAD_REQUEST,
                "cut_off",
                "The backup was cut off before it ended; nothing was changed.",
            ));
        };
        let Ok(chunk) = frame.into_data() else { continue };
        total += chunk.len() as u64;
        if total > archive::MAX_ARCHIVE_BYTES {
            return Err(refused(Refusal::TooLarge));
        }
        if let Err(e) = out.write_all(&chunk).await {
            tracing::warn!(error = %e, "a restore's upload could not be stored");
            return Err(not_restored());
        }
    }
    if let Err(e) = out.flush().await {
        tracing::warn!(error = %e, "a restore's upload could not be stored");
        return Err(not_restored());
    }
    Ok(out.into_std().await)
}

fn restore_error(e: RestoreError) -> Response<Body> {
    match e {
        RestoreError::Refused(refusal) => refused(refusal),
        RestoreError::Io(e) => {
            tracing::warn!(error = %e, "a restore failed");
            not_restored()
        }
    }
}

fn refused(refusal: Refusal) -> Response<Body> {
    let status =
        if refusal == Refusal::TooLarge { StatusCode::PAYLOAD_TOO_LARGE } else { StatusCode::UNPROCESSABLE_ENTITY };
    error(status, refusal.code(), refusal.message())
}

fn not_restored() -> Response<Body> {
    error(
        StatusCode::INTERNAL_SERVER_ERROR,
        "restore_failed",
        "The backup could not be restored on the agent's machine; its state is as it was.",
    )
}

fn error(status: StatusCode, code: &str, message: &str) -> Response<Body> {
    respond(status, json!({ "error": message, "code": code }).to_string())
}
