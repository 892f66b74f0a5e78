//! `AuthUser`: the extractor every protected route takes. Each rejection is a 401 in the JSON shape.

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use axum_extra::extract::CookieJar;

use super::touch::Touch;
use super::{api_token, session};
use crate::app::{App, AppState};
use crate::crypto::sha256_hex;
use crate::db::{api_tokens, sessions};
use crate::domain::{UserId, now_secs};
use crate::error::AppError;

/// `last_seen_at` / `last_used_at` are written at most this often, not on every request.
const TOUCH_INTERVAL_SECS: i64 = 60;

/// Filled by `AuthUser` once a request authenticates, so the request's log line names the user.
#[derive(Clone)]
pub struct RequestUser(pub std::sync::Arc<std::sync::OnceLock<UserId>>);

#[derive(Debug, Clone)]
pub struct AuthUser {
    pub user_id: UserId,
    pub via: AuthVia,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum AuthVia {
    Session { token_hash: String },
    ApiToken { token_id: String },
    Clerk { session_id: String },
}

impl FromRequestParts<AppState> for AuthUser {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        if let Some(cached) = parts.extensions.get::<AuthUser>() {
            return Ok(cached.clone());
        }
        let user = authenticate(parts, state).await?;
        if let Some(slot) = parts.extensions.get::<RequestUser>() {
            let _ = slot.0.set(user.user_id.clone());
        }
        parts.extensions.insert(user.clone());
        Ok(user)
    }
}

async fn authenticate(parts: &Parts, app: &App) -> Result<AuthUser, AppError> {
    // A Bearer credential is the whole identity of its request: cookies are not looked at.
    if let Some(bearer) = bearer_credential(&parts.headers) {
        if bearer.starts_with(api_token::PREFIX) {
            let result = from_api_token(app, bearer).await;
            if result.as_ref().is_err_and(|e| e.status() == axum::http::StatusCode::UNAUTHORIZED) {
                let peer = parts.extensions.get::<ConnectInfo<SocketAddr>>().map(|c| c.0);
                if let Some(peer) = peer {
                    app.auth_limiter.token_failure(app.site.client_ip(&parts.headers, peer))?;
                }
            }
            return result;
        }
        if let Some(clerk) = &app.clerk {
            return clerk.authenticate(app, bearer, invite_header(&parts.headers)).await;
        }
        tracing::debug!("rejected: unknown bearer credential");
        return Err(AppError::unauthenticated());
    }

    let jar = CookieJar::from_headers(&parts.headers);
    if app.site.local_accounts
        && let Some(cookie) = jar.get(session::cookie_name(app))
    {
        return from_session_cookie(app, cookie.value()).await;
    }
    if let Some(clerk) = &app.clerk
        && let Some(cookie) = jar.get("__session")
    {
        return clerk.authenticate(app, cookie.value(), invite_header(&parts.headers)).await;
    }
    Err(AppError::unauthenticated())
}

/// A Clerk user new to Roost brings an invite code in this header when sign-ups need one.
pub const INVITE_HEADER: &str = "roost-invite";

fn invite_header(headers: &axum::http::HeaderMap) -> Option<&str> {
    headers.get(INVITE_HEADER)?.to_str().ok().map(str::trim).filter(|code| !code.is_empty())
}

/// The credential of an `Authorization: Bearer …` header. Other schemes (a proxy's Basic
/// auth, say) are not Roost's and authenticate nothing.
pub fn bearer_credential(headers: &axum::http::HeaderMap) -> Option<&str> {
    headers.get(AUTHORIZATION)?.to_str().ok()?.strip_prefix("Bearer ").map(str::trim)
}

async fn from_session_cookie(app: &App, secret: &str) -> Result<AuthUser, AppError> {
    let token_hash = sha256_hex(secret.as_bytes());
    let now = now_secs();
    let conn = app.db.conn()?;
    let Some(live) = sessions::find_live(&conn, &token_hash, now, app.site.session_idle_secs).await? else {
        tracing::debug!("rejected: unknown or expired session");
        return Err(AppError::new(
            axum::http::StatusCode::UNAUTHORIZED,
            "session_expired",
            "Your session has ended. Sign in again.",
        ));
    };
    if now - live.last_seen_at >= TOUCH_INTERVAL_SECS {
        app.touches.touch(Touch::Session { token_hash: token_hash.clone(), now });
    }
    Ok(AuthUser { user_id: live.user_id, via: AuthVia::Session { token_hash } })
}

async fn from_api_token(app: &App, secret: &str) -> Result<AuthUser, AppError> {
    if !api_token::looks_valid(secret) {
        tracing::debug!("rejected: malformed API token");
        return Err(AppError::unauthenticated());
    }
    let now = now_secs();
    let conn = app.db.conn()?;
    let Some(owner) = api_tokens::find_live(&conn, &api_token::hash(secret), now).await? else {
        tracing::debug!("rejected: unknown, revoked or expired API token");
        return Err(AppError::new(
            axum::http::StatusCode::UNAUTHORIZED,
            "invalid_token",
            "This API token is not valid: it has expired or was revoked. Create a new one in Settings.",
        ));
    };
    if owner.suspended {
        return Err(suspended());
    }
    if owner.last_used_at.is_none_or(|t| now - t >= TOUCH_INTERVAL_SECS) {
        app.touches.touch(Touch::ApiToken { token_id: owner.token_id.clone(), now });
    }
    Ok(AuthUser { user_id: owner.user_id, via: AuthVia::ApiToken { token_id: owner.token_id } })
}

/// What a suspended account is told wherever it tries to get in.
pub fn suspended() -> AppError {
    AppError::forbidden(
        "account_suspended",
        "This account is suspended, so it cannot sign in, use API tokens or chat. Ask the operator of this server.",
    )
}
