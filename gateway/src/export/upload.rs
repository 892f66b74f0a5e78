//! An uploaded archive, streamed to an unnamed scratch file (gone when closed, even after a
//! crash), never more than [`archive::MAX_ARCHIVE_BYTES`] and never stalled for long.

use std::time::Duration;

use axum::body::Body;
use futures_util::StreamExt;
use provisioner::archive;
use tokio::io::AsyncWriteExt;

use crate::error::AppError;

/// A client that sends nothing for this long has gone.
const STALL: Duration = Duration::from_secs(60);

pub async fn receive(body: Body, scratch: &std::path::Path, declared: Option<u64>) -> Result<std::fs::File, AppError> {
    if declared.is_some_and(|n| n > archive::MAX_ARCHIVE_BYTES) {
        return Err(too_large());
    }
    let scratch = scratch.to_path_buf();
    let file = tokio::task::spawn_blocking(move || tempfile::tempfile_in(scratch))
        .await
        .map_err(AppError::internal)?
        .map_err(AppError::internal)?;
    let mut out = tokio::fs::File::from_std(file);
    let mut stream = body.into_data_stream();
    let mut total: u64 = 0;
    loop {
        let chunk = match tokio::time::timeout(STALL, stream.next()).await {
            Err(_) => return Err(AppError::bad_request("upload_stalled", "The upload stopped arriving. Try again.")),
            Ok(None) => break,
            Ok(Some(Err(_))) => {
                return Err(AppError::bad_request("upload_failed", "The upload was cut off. Try again."));
            }
            Ok(Some(Ok(chunk))) => chunk,
        };
        total += chunk.len() as u64;
        if total > archive::MAX_ARCHIVE_BYTES {
            return Err(too_large());
        }
        out.write_all(&chunk).await.map_err(AppError::internal)?;
    }
    if total == 0 {
        return Err(AppError::bad_request("empty_upload", "Choose a backup file to restore."));
    }
    out.flush().await.map_err(AppError::internal)?;
    Ok(out.into_std().await)
}

fn too_large() -> AppError {
    AppError::new(
        axum::http::StatusCode::PAYLOAD_TOO_LARGE,
        archive::Refusal::TooLarge.code(),
        archive::Refusal::TooLarge.message(),
    )
}
