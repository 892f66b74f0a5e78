//! The agent's workspace files (OpenClaw's `<state dir>/workspace`) for its user: the answers'
//! types and headers ([`content_type`]), the upload body's bounds ([`upload`]), and how a
//! provider's refusal is told to the user. Every path is checked in `roost_agent::workspace`,
//! whichever the provider; the routes are `crate::routes::files`.

pub mod content_type;
pub mod upload;

use axum::http::StatusCode;
use provisioner::files::{FileError, FsError};

use crate::error::AppError;

/// A provider's refusal as the user reads it; failures inside are logged, never shown.
pub fn app_error(e: FileError) -> AppError {
    match e {
        FileError::Fs(FsError::Io(io)) => AppError::internal(anyhow::Error::new(io).context("a workspace file")),
        FileError::Fs(fs) => {
            let status = StatusCode::from_u16(fs.status()).unwrap_or(StatusCode::BAD_REQUEST);
            AppError::new(status, fs.code(), fs.sentence())
        }
        FileError::NotRunning => AppError::conflict("agent_stopped", e.public_message()),
        FileError::CutOff => AppError::bad_request("cut_off", e.public_message()),
        FileError::Agent(ref why) => {
            tracing::warn!(error = %why, "the agent's sidecar did not serve a file request");
            AppError::new(StatusCode::BAD_GATEWAY, "agent_unreachable", e.public_message())
        }
        FileError::Unsupported(why) => AppError::new(StatusCode::NOT_IMPLEMENTED, "unsupported", why),
    }
}
