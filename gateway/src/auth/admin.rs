//! `AdminUser`: for `/api/admin/*`. A signed-in session (or Clerk session) of a live,
//! unsuspended account with the admin role passes; anyone else signed in gets 403, and the
//! attempt is written to the audit log. API tokens never pass: a leaked token must not run
//! the server.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;

use super::{AuthUser, AuthVia};
use crate::app::AppState;
use crate::db::{admin_audit, users};
use crate::domain::now_secs;
use crate::error::AppError;

pub struct AdminUser(pub AuthUser);

impl FromRequestParts<AppState> for AdminUser {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let user = AuthUser::from_request_parts(parts, state).await?;
        let conn = state.db.conn()?;
        let admin =
            !matches!(user.via, AuthVia::ApiToken { .. }) && users::is_active_admin(&conn, &user.user_id).await?;
        if admin {
            return Ok(Self(user));
        }
        // Nested routers see the path without `/api/admin`; the log names the one asked for.
        let path = parts.extensions.get::<axum::extract::OriginalUri>().map_or(parts.uri.path(), |o| o.0.path());
        let action = format!("{} {path}", parts.method);
        let detail = if matches!(user.via, AuthVia::ApiToken { .. }) { "with an API token" } else { "not an admin" };
        let entry = admin_audit::Entry {
            actor: admin_audit::Actor::User(&user.user_id),
            action: &action,
            target_user_id: None,
            detail,
            allowed: false,
        };
        admin_audit::append(&conn, &entry, now_secs()).await?;
        tracing::warn!(user_id = %user.user_id, action, "refused an admin request");
        Err(AppError::forbidden(
            "admin_only",
            "This needs the admin role, from a signed-in session. Ask the operator of this server.",
        ))
    }
}
