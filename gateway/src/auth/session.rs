//! Server-side login sessions: a random secret in an HttpOnly cookie, its SHA-256 in the DB.

use axum::http::HeaderMap;
use axum_extra::extract::cookie::{Cookie, SameSite};

use crate::app::App;
use crate::auth::Revoked;
use crate::crypto::{random_token, sha256_hex};
use crate::db::sessions::{self, NewSession};
use crate::domain::{UserId, now_secs};
use crate::error::AppResult;

/// The cookie name: `__Host-` prefixed (so Secure, host-only, Path=/) when served over https.
pub fn cookie_name(app: &App) -> &'static str {
    if app.site.secure_cookies { "__Host-roost_session" } else { "roost_session" }
}

/// Creates a session row and returns the `Set-Cookie` value for it.
pub async fn start(app: &App, user_id: &UserId, headers: &HeaderMap, ip: &str) -> AppResult<Cookie<'static>> {
    let secret = random_token();
    let now = now_secs();
    let conn = app.db.conn()?;
    let user_agent =
        headers.get(axum::http::header::USER_AGENT).and_then(|v| v.to_str().ok()).map(|ua| truncate(ua, 256));
    sessions::create(
        &conn,
        NewSession {
            token_hash: &sha256_hex(secret.as_bytes()),
            user_id,
            now,
            expires_at: now + app.site.session_max_secs,
            user_agent: user_agent.as_deref(),
            ip: Some(ip),
        },
    )
    .await?;
    Ok(build_cookie(app, secret, app.site.session_max_secs))
}

/// Ends the session behind a cookie value: its row goes, and sockets opened with it close.
pub async fn end(app: &App, secret: &str) -> AppResult<()> {
    let token_hash = sha256_hex(secret.as_bytes());
    if let Some(user) = sessions::delete(&*app.db.conn()?, &token_hash).await? {
        app.relays.revoke(Revoked::Session { user, token_hash });
    }
    Ok(())
}

pub fn removal_cookie(app: &App) -> Cookie<'static> {
    build_cookie(app, String::new(), 0)
}

fn build_cookie(app: &App, value: String, max_age_secs: i64) -> Cookie<'static> {
    Cookie::build((cookie_name(app), value))
        .http_only(true)
        .same_site(SameSite::Lax)
        .path("/")
        .secure(app.site.secure_cookies)
        .max_age(time::Duration::seconds(max_age_secs))
        .build()
}

fn truncate(s: &str, max: usize) -> String {
    s.chars().take(max).collect()
}
