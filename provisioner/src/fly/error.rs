//! Typed Machines API errors. Callers classify on the HTTP status plus the body's `status` code,
//! never on prose (research §4); the prose is kept for logs only.

use std::fmt;
use std::time::Duration;

/// What the API said when it refused a call. Never holds the token: the message comes from the
/// response body and is scrubbed of it before it is stored (see `client::api_error`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    /// `POST /v1/apps/{app}/machines` and the like: method and path, no query, no headers.
    pub call: String,
    pub http_status: u16,
    /// The body's `error` (or fly-go's `message`) field, else the raw body, truncated.
    pub message: String,
    /// The body's `status` code: `insufficient_capacity`, `volume_placement_capacity`,
    /// `name_taken`, `unknown`, or absent.
    pub code: Option<String>,
    /// The `fly-request-id` header; Fly support asks for it (research §1).
    pub request_id: Option<String>,
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} answered {}: {}", self.call, self.http_status, self.message)?;
        if let Some(code) = &self.code {
            write!(f, " ({code})")?;
        }
        if let Some(id) = &self.request_id {
            write!(f, " [fly-request-id {id}]")?;
        }
        Ok(())
    }
}

/// Why a request got no HTTP answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TransportKind {
    /// No connection was made, so nothing was sent: always safe to retry (research §6 item 10).
    Connect,
    /// The per-call timeout passed. The request may have been acted on.
    Timeout,
    /// Anything else (a reset mid-request, a broken body). The request may have been acted on.
    Other,
}

#[derive(Debug, Clone, thiserror::Error)]
pub enum FlyError {
    #[error("{0}")]
    BadRequest(ApiError),
    #[error("{0}")]
    Unauthorized(ApiError),
    /// On `GET /v1/apps/{name}`: the app exists in an org we cannot read (the name is taken).
    /// On create: a regional memory quota.
    #[error("{0}")]
    Forbidden(ApiError),
    #[error("{0}")]
    NotFound(ApiError),
    /// 408: a `/wait` deadline, or a flyd timeout on create, which may be a silent success.
    #[error("{0}")]
    Timeout(ApiError),
    #[error("{0}")]
    Conflict(ApiError),
    #[error("{0}")]
    PreconditionFailed(ApiError),
    #[error("{0}")]
    Unprocessable(ApiError),
    #[error("{error} (retry after {retry_after:?})")]
    RateLimited { error: ApiError, retry_after: Option<Duration> },
    #[error("{0}")]
    Server(ApiError),
    /// Any other non-2xx status.
    #[error("{0}")]
    Status(ApiError),
    #[error("{call}: no answer ({kind:?}): {message}")]
    Transport { call: String, kind: TransportKind, message: String },
    /// A 2xx whose body is not what the API documents.
    #[error("{call}: unreadable answer: {message}")]
    Decode { call: String, message: String },
    /// [`FlyClient::wait_for_state`](super::FlyClient::wait_for_state) ran out of its own deadline.
    #[error("machine {machine_id} did not reach {wanted} within {waited:?}")]
    WaitTimedOut { machine_id: String, wanted: String, waited: Duration },
}

impl FlyError {
    /// Classifies a non-2xx answer by its status.
    pub fn from_status(error: ApiError, retry_after: Option<Duration>) -> Self {
        match error.http_status {
            400 => Self::BadRequest(error),
            401 => Self::Unauthorized(error),
            403 => Self::Forbidden(error),
            404 => Self::NotFound(error),
            408 => Self::Timeout(error),
            409 => Self::Conflict(error),
            412 => Self::PreconditionFailed(error),
            422 => Self::Unprocessable(error),
            429 => Self::RateLimited { error, retry_after },
            500..=599 => Self::Server(error),
            _ => Self::Status(error),
        }
    }

    pub fn api(&self) -> Option<&ApiError> {
        match self {
            Self::BadRequest(e)
            | Self::Unauthorized(e)
            | Self::Forbidden(e)
            | Self::NotFound(e)
            | Self::Timeout(e)
            | Self::Conflict(e)
            | Self::PreconditionFailed(e)
            | Self::Unprocessable(e)
            | Self::RateLimited { error: e, .. }
            | Self::Server(e)
            | Self::Status(e) => Some(e),
            Self::Transport { .. } | Self::Decode { .. } | Self::WaitTimedOut { .. } => None,
        }
    }

    pub fn http_status(&self) -> Option<u16> {
        self.api().map(|e| e.http_status)
    }

    pub fn is_not_found(&self) -> bool {
        matches!(self, Self::NotFound(_))
    }

    /// `422 name_taken` (research §2.1; the legacy prose is matched too because older answers
    /// carry no code, as fly-go's `IsNameTakenError` does).
    pub fn is_name_taken(&self) -> bool {
        matches!(self, Self::Unprocessable(e) if e.code.as_deref() == Some("name_taken")
            || e.message.contains("already been taken"))
    }

    /// A capacity refusal the provider answers by moving elsewhere (another region, or a forked
    /// volume). The `status` codes are classified whatever the HTTP status, since the research
    /// ties none to one; the prose cases are those research §4 and pitfall 6 quote, which carry
    /// no code: 400 "no capacity" (volume create), 412 "insufficient resources" (volume host
    /// full), 409 "insufficient memory".
    pub fn is_capacity(&self) -> bool {
        let Some(e) = self.api() else { return false };
        if matches!(e.code.as_deref(), Some("insufficient_capacity" | "volume_placement_capacity")) {
            return true;
        }
        let m = e.message.as_str();
        match e.http_status {
            400 => m.contains("no capacity"),
            409 => m.contains("insufficient memory"),
            412 => m.contains("insufficient resources"),
            _ => false,
        }
    }
}
