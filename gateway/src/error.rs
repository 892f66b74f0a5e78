//! One error type for every handler; it renders as `{"error":{"code","message"}}`.

use std::borrow::Cow;

use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

pub type AppResult<T> = Result<T, AppError>;

#[derive(Debug)]
pub struct AppError {
    status: StatusCode,
    code: &'static str,
    message: Cow<'static, str>,
    retry_after_secs: Option<u64>,
    source: Option<anyhow::Error>,
}

impl AppError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<Cow<'static, str>>) -> Self {
        Self { status, code, message: message.into(), retry_after_secs: None, source: None }
    }

    pub fn bad_request(code: &'static str, message: impl Into<Cow<'static, str>>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, message)
    }

    pub fn unauthenticated() -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "unauthenticated", "Your session has ended. Sign in again to continue.")
    }

    pub fn forbidden(code: &'static str, message: impl Into<Cow<'static, str>>) -> Self {
        Self::new(StatusCode::FORBIDDEN, code, message)
    }

    pub fn not_found(message: impl Into<Cow<'static, str>>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", message)
    }

    pub fn conflict(code: &'static str, message: impl Into<Cow<'static, str>>) -> Self {
        Self::new(StatusCode::CONFLICT, code, message)
    }

    /// Local agents cannot be sandboxed here and the operator did not accept the risk.
    pub fn account_limit() -> Self {
        Self::forbidden(
            "account_limit",
            "This Roost server serves one account only, because it cannot keep the agents of different \
             users apart on this machine. Ask its operator.",
        )
    }

    pub fn rate_limited(retry_after_secs: u64) -> Self {
        let secs = retry_after_secs.max(1);
        let mut err = Self::new(
            StatusCode::TOO_MANY_REQUESTS,
            "rate_limited",
            format!("Too many attempts. Try again in {}.", wait_words(secs)),
        );
        err.retry_after_secs = Some(secs);
        err
    }

    pub fn unavailable(code: &'static str, message: impl Into<Cow<'static, str>>, retry_after_secs: u64) -> Self {
        let mut err = Self::new(StatusCode::SERVICE_UNAVAILABLE, code, message);
        err.retry_after_secs = Some(retry_after_secs.max(1));
        err
    }

    /// An unexpected failure: logged with its cause, shown to the client without details.
    pub fn internal(source: impl Into<anyhow::Error>) -> Self {
        let mut err = Self::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", "Something went wrong on the server.");
        err.source = Some(source.into());
        err
    }

    /// Adds `Retry-After` to an answer that a client may try again later.
    pub fn retry_after(mut self, secs: u64) -> Self {
        self.retry_after_secs = Some(secs.max(1));
        self
    }

    pub fn status(&self) -> StatusCode {
        self.status
    }

    pub fn code(&self) -> &'static str {
        self.code
    }

    pub fn message(&self) -> &str {
        &self.message
    }
}

impl std::fmt::Display for AppError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}: {}", self.status.as_u16(), self.code, self.message)
    }
}

/// "40 seconds", "1 minute", "3 minutes": the wait a person reads (the page words it the same).
pub fn wait_words(secs: u64) -> String {
    if secs < 90 {
        format!("{secs} second{}", if secs == 1 { "" } else { "s" })
    } else {
        let minutes = (secs + 30) / 60;
        format!("{minutes} minute{}", if minutes == 1 { "" } else { "s" })
    }
}

/// Marks a response as an unexpected failure, so the request-id layer can name it for the user.
#[derive(Clone, Copy)]
pub struct InternalFailure;

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        let failure = self.source.is_some();
        if let Some(source) = &self.source {
            tracing::error!(error = ?source, "request failed");
        }
        let body = json!({ "error": { "code": self.code, "message": self.message } });
        let mut response = (self.status, axum::Json(body)).into_response();
        if failure {
            response.extensions_mut().insert(InternalFailure);
        }
        if let Some(secs) = self.retry_after_secs {
            response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        response
    }
}

impl From<crate::domain::Invalid> for AppError {
    fn from(invalid: crate::domain::Invalid) -> Self {
        Self::bad_request(invalid.code, invalid.message)
    }
}

impl From<crate::chat::InvalidSessionKey> for AppError {
    fn from(_: crate::chat::InvalidSessionKey) -> Self {
        Self::not_found("There is no such chat.")
    }
}

impl From<libsql::Error> for AppError {
    fn from(err: libsql::Error) -> Self {
        Self::internal(err)
    }
}

impl From<anyhow::Error> for AppError {
    fn from(err: anyhow::Error) -> Self {
        Self::internal(err)
    }
}

impl From<JsonRejection> for AppError {
    fn from(rejection: JsonRejection) -> Self {
        match rejection.status() {
            StatusCode::PAYLOAD_TOO_LARGE => {
                Self::new(StatusCode::PAYLOAD_TOO_LARGE, "body_too_large", "The request body is too large.")
            }
            StatusCode::UNSUPPORTED_MEDIA_TYPE => Self::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                "Send the body as JSON, with Content-Type: application/json.",
            ),
            _ => Self::bad_request(
                "invalid_json",
                format!("The request body was not accepted: {}.", rejection_detail(&rejection.body_text())),
            ),
        }
    }
}

impl From<QueryRejection> for AppError {
    fn from(rejection: QueryRejection) -> Self {
        Self::bad_request(
            "invalid_query",
            format!("The address's query was not accepted: {}.", rejection_detail(&rejection.body_text())),
        )
    }
}

/// serde's reason from an axum rejection, without axum's preamble or serde's position.
fn rejection_detail(text: &str) -> String {
    let detail = text.split_once(": ").map_or(text, |(_, rest)| rest);
    let detail = detail.rsplit_once(" at line ").map_or(detail, |(head, _)| head);
    detail.trim_end_matches('.').to_string()
}
