//! `SessionUser`: for what a leaked API token must not be able to do (manage tokens, delete the
//! account), so that revoking a token really ends it. A browser session or a Clerk session
//! token passes; an `rst_…` API token gets 403.

use axum::extract::FromRequestParts;
use axum::http::StatusCode;
use axum::http::request::Parts;

use super::{AuthUser, AuthVia};
use crate::app::AppState;
use crate::error::AppError;

pub struct SessionUser(pub AuthUser);

impl FromRequestParts<AppState> for SessionUser {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let user = AuthUser::from_request_parts(parts, state).await?;
        match user.via {
            AuthVia::Session { .. } | AuthVia::Clerk { .. } => Ok(Self(user)),
            AuthVia::ApiToken { .. } => Err(AppError::new(
                StatusCode::FORBIDDEN,
                "session_required",
                "This needs a signed-in session. An API token cannot manage tokens or the account.",
            )),
        }
    }
}
