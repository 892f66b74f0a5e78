//! The signed-in account: read it, or delete it with everything it holds.

use std::net::SocketAddr;

use axum::extract::ConnectInfo;
use axum::http::{HeaderMap, StatusCode};
use axum_extra::extract::CookieJar;
use bytes::Bytes;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::app::AppState;
use crate::auth::{AuthUser, AuthVia, Revoked, SessionUser, session};
use crate::db::{deletion, users};
use crate::error::{AppError, AppResult};

#[utoipa::path(get, operation_id = "me_get", path = "/me", tag = "account", security(("session" = []), ("api_token" = [])), responses((status = 200, description = "The account: `{user, …}`", body = crate::openapi::Object), (status = 401, description = "Not signed in", body = crate::openapi::ErrorBody)))]
pub async fn get(state: AppState, auth: AuthUser) -> AppResult<axum::Json<Value>> {
    let user = users::find_by_id(&*state.db.conn()?, &auth.user_id).await?.ok_or_else(AppError::unauthenticated)?;
    let via = match auth.via {
        AuthVia::Session { .. } => "session",
        AuthVia::ApiToken { .. } => "api_token",
        AuthVia::Clerk { .. } => "clerk",
    };
    Ok(axum::Json(json!({
        "id": user.id, "email": user.email, "created_at": user.created_at, "auth": via, "is_admin": user.is_admin,
    })))
}

/// `DELETE /api/me`: local accounts confirm with their password; Clerk accounts (which have
/// none here) send an empty body or `{}`.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct DeleteAccount {
    password: Option<String>,
}

/// Deletes the account (see `db::deletion` for what goes and what stays), closes every socket
/// of the user and destroys their agent and its data. Only from a session: a leaked API token
/// must not be able to delete an account.
#[utoipa::path(delete, operation_id = "me_delete", path = "/me", tag = "account", request_body(content = crate::openapi::Object, description = "`{password}` (local accounts)"), security(("session" = [])), responses((status = 204, description = "The account and its agent are deleted"), (status = 400, description = "Invalid input", body = crate::openapi::ErrorBody), (status = 401, description = "Not signed in", body = crate::openapi::ErrorBody), (status = 403, description = "Needs a browser session, not an API token", body = crate::openapi::ErrorBody)))]
pub async fn delete(
    state: AppState,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    jar: CookieJar,
    SessionUser(auth): SessionUser,
    body: Bytes,
) -> AppResult<(StatusCode, CookieJar)> {
    let body = parse_body(&body)?;
    let user = &auth.user_id;
    let conn = state.db.conn()?;
    let account = users::credentials_by_id(&conn, user).await?.ok_or_else(AppError::unauthenticated)?;
    match (account.password_hash, body.password) {
        (Some(hash), Some(password)) => {
            // Counted like login failures, so a stolen session cannot be used to guess the password.
            let ip = state.site.client_ip(&headers, peer);
            let key = account.user.email.unwrap_or_else(|| user.to_string());
            state.auth_limiter.login_allowed(ip, &key)?;
            if !state.hasher.verify(&password, Some(hash)).await? {
                state.auth_limiter.login_failed(ip, &key);
                tracing::info!(user_id = %user, "account deletion refused: wrong password");
                return Err(AppError::forbidden(
                    "wrong_password",
                    "That password is not right, so nothing was deleted. Type your current password.",
                ));
            }
        }
        (Some(_), None) => {
            return Err(AppError::bad_request(
                "password_required",
                "Deleting an account needs its password: send {\"password\": \"…\"}.",
            ));
        }
        (None, Some(_)) => {
            return Err(AppError::bad_request(
                "no_password",
                "This account signs in through Clerk and has no password here; send an empty body.",
            ));
        }
        (None, None) => {}
    }
    if !deletion::delete_account(&conn, user).await? {
        return Err(AppError::unauthenticated());
    }
    drop(conn);
    tracing::info!(user_id = %user, "account deleted");
    state.relays.revoke(Revoked::User(user.clone()));
    // A failure is logged with an id; the sweep of deleted users' machines retries it, so the
    // account stays deleted either way.
    let _ = state.machines.destroy(user).await;
    Ok((StatusCode::NO_CONTENT, jar.add(session::removal_cookie(&state))))
}

fn parse_body(body: &[u8]) -> AppResult<DeleteAccount> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(DeleteAccount::default());
    }
    serde_json::from_slice(body).map_err(|e| {
        AppError::bad_request(
            "invalid_body",
            format!("The body must be empty or a JSON object with only a \"password\" field ({e})."),
        )
    })
}

/// `POST /api/me/password`: a new password, the current one re-entered.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChangePassword {
    current_password: String,
    new_password: String,
}

/// Changes the password of a local account and signs out every other session of it (this one
/// stays). Failures count like login failures, so a stolen session cannot guess the password.
#[utoipa::path(post, operation_id = "me_change_password", path = "/me/password", tag = "account", request_body(content = crate::openapi::Object, description = "`{current_password, new_password}`"), security(("session" = [])), responses((status = 200, description = "Changed; other sessions are signed out", body = crate::openapi::Object), (status = 400, description = "Invalid input", body = crate::openapi::ErrorBody), (status = 401, description = "Not signed in", body = crate::openapi::ErrorBody), (status = 403, description = "Needs a browser session, not an API token", body = crate::openapi::ErrorBody)))]
pub async fn change_password(
    state: AppState,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    SessionUser(auth): SessionUser,
    crate::json::Json(body): crate::json::Json<ChangePassword>,
) -> AppResult<axum::Json<Value>> {
    let AuthVia::Session { token_hash } = &auth.via else {
        return Err(AppError::bad_request(
            "no_password",
            "This account signs in through Clerk and has no password here. Change it in your Clerk account.",
        ));
    };
    let new_password = crate::domain::Password::parse(body.new_password)?;
    let user = &auth.user_id;
    let conn = state.db.conn()?;
    let ip = state.site.client_ip(&headers, peer);
    confirm_password(
        &state,
        &conn,
        ip,
        user,
        &body.current_password,
        "Your current password is not right, so nothing changed. Type it again.",
    )
    .await?;
    let hash = state.hasher.hash(new_password.expose()).await?;
    if !users::set_password_hash(&conn, user, &hash).await? {
        return Err(AppError::unauthenticated());
    }
    let signed_out = sign_out_others_of(&state, user, token_hash).await?;
    tracing::info!(user_id = %user, signed_out, "password changed");
    Ok(axum::Json(json!({ "signed_out": signed_out })))
}

/// `POST /api/me/sign-out-others`: ends every other session of this account (this one stays).
#[utoipa::path(post, operation_id = "me_sign_out_others", path = "/me/sign-out-others", tag = "account", security(("session" = [])), responses((status = 200, description = "`{signed_out}`: how many other sessions ended", body = crate::openapi::Object), (status = 401, description = "Not signed in", body = crate::openapi::ErrorBody), (status = 403, description = "Needs a browser session, not an API token", body = crate::openapi::ErrorBody)))]
pub async fn sign_out_others(state: AppState, SessionUser(auth): SessionUser) -> AppResult<axum::Json<Value>> {
    let AuthVia::Session { token_hash } = &auth.via else {
        return Err(AppError::bad_request(
            "clerk_sessions",
            "This account signs in through Clerk. Sign out of other devices in your Clerk account.",
        ));
    };
    let signed_out = sign_out_others_of(&state, &auth.user_id, token_hash).await?;
    Ok(axum::Json(json!({ "signed_out": signed_out })))
}

async fn sign_out_others_of(state: &AppState, user: &crate::domain::UserId, keep: &str) -> AppResult<usize> {
    let ended = crate::db::sessions::delete_others(&*state.db.conn()?, user, keep).await?;
    for token_hash in &ended {
        state.relays.revoke(Revoked::Session { user: user.clone(), token_hash: token_hash.clone() });
    }
    Ok(ended.len())
}

/// `POST /api/me/email`: a new email, the password re-entered.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChangeEmail {
    new_email: String,
    password: String,
}

/// Checks the account's own password as a login does: limited per (client IP, email), and a
/// wrong one counts as a failed login. `wrong` is what the user is told then.
async fn confirm_password(
    state: &AppState,
    conn: &libsql::Connection,
    ip: std::net::IpAddr,
    user: &crate::domain::UserId,
    password: &str,
    wrong: &'static str,
) -> AppResult<users::Credentials> {
    let account = users::credentials_by_id(conn, user).await?.ok_or_else(AppError::unauthenticated)?;
    let key = account.user.email.clone().unwrap_or_else(|| user.to_string());
    state.auth_limiter.login_allowed(ip, &key)?;
    if !state.hasher.verify(password, account.password_hash.clone()).await? {
        state.auth_limiter.login_failed(ip, &key);
        return Err(AppError::forbidden("wrong_password", wrong));
    }
    Ok(account)
}

/// Changes the email of a local account. The new one is checked as at sign-up and must be
/// free; a wrong password counts like a failed login.
#[utoipa::path(post, operation_id = "me_change_email", path = "/me/email", tag = "account", request_body(content = crate::openapi::Object, description = "`{new_email, password}`"), security(("session" = [])), responses((status = 200, description = "The new email", body = crate::openapi::Object), (status = 400, description = "Invalid input", body = crate::openapi::ErrorBody), (status = 401, description = "Not signed in", body = crate::openapi::ErrorBody), (status = 409, description = "The email is taken", body = crate::openapi::ErrorBody)))]
pub async fn change_email(
    state: AppState,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    SessionUser(auth): SessionUser,
    crate::json::Json(body): crate::json::Json<ChangeEmail>,
) -> AppResult<axum::Json<Value>> {
    if !matches!(auth.via, AuthVia::Session { .. }) {
        return Err(AppError::bad_request(
            "no_password",
            "This account signs in through Clerk. Change its email in your Clerk account.",
        ));
    }
    let new_email = crate::domain::Email::parse(&body.new_email)?;
    let user = &auth.user_id;
    let conn = state.db.conn()?;
    let ip = state.site.client_ip(&headers, peer);
    let account = confirm_password(
        &state,
        &conn,
        ip,
        user,
        &body.password,
        "That password is not right, so your email did not change. Type your current password.",
    )
    .await?;
    if account.user.email.as_deref() == Some(new_email.as_str()) {
        return Err(AppError::bad_request("same_email", "That is already your email address."));
    }
    match users::set_email(&conn, user, &new_email).await {
        Ok(true) => {}
        Ok(false) => return Err(AppError::unauthenticated()),
        Err(users::SetEmailError::Taken) => {
            return Err(AppError::conflict(
                "email_taken",
                "Another account already uses this email. Choose a different one.",
            ));
        }
        Err(users::SetEmailError::Db(e)) => return Err(e.into()),
    }
    tracing::info!(user_id = %user, "email changed");
    Ok(axum::Json(json!({ "email": new_email.as_str() })))
}
