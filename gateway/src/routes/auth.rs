//! Local accounts: sign up, log in, log out.

use std::net::SocketAddr;

use axum::extract::ConnectInfo;
use axum::http::{HeaderMap, StatusCode};
use axum_extra::extract::CookieJar;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::app::{App, AppState};
use crate::auth::session;
use crate::db::users;
use crate::domain::{Email, Password};
use crate::error::{AppError, AppResult};
use crate::json::Json;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Credentials {
    email: String,
    password: String,
}

/// A response that sets a session cookie is kept by no cache on the way.
type NoStore = [(axum::http::HeaderName, &'static str); 1];
const NO_STORE: NoStore = [(axum::http::header::CACHE_CONTROL, "no-store")];

#[utoipa::path(post, operation_id = "auth_signup", path = "/auth/signup", tag = "auth", request_body(content = crate::openapi::Object, description = "`{email, password}`"), responses((status = 201, description = "Signed up and signed in: `{user}`, with the session cookie", body = crate::openapi::Object), (status = 400, description = "Invalid input", body = crate::openapi::ErrorBody)))]
pub async fn signup(
    state: AppState,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    jar: CookieJar,
    Json(body): Json<Credentials>,
) -> AppResult<(StatusCode, NoStore, CookieJar, axum::Json<Value>)> {
    require_local_accounts(&state)?;
    let email = Email::parse(&body.email)?;
    let password = Password::parse(body.password)?;
    let ip = state.site.client_ip(&headers, peer);
    state.auth_limiter.attempt(ip)?;

    let hash = state.hasher.hash(password.expose()).await?;
    let conn = state.db.conn()?;
    let user = users::create_local(&conn, &email, &hash, state.accounts).await.map_err(|e| match e {
        users::CreateError::EmailTaken => AppError::conflict(
            "email_taken",
            "An account with this email already exists. Sign in instead, or use another email.",
        ),
        users::CreateError::AccountLimit => AppError::account_limit(),
        users::CreateError::Db(e) => e.into(),
    })?;
    tracing::info!(user_id = %user.id, "account created");
    let jar = replace_session(&state, jar, &user.id, &headers, &ip.to_string()).await?;
    // A new user is about to chat: start their agent now, not on the first message.
    if state.site.prewarm {
        state.machines.prewarm(&user.id);
    }
    Ok((StatusCode::CREATED, NO_STORE, jar, axum::Json(json!({ "user": user }))))
}

#[utoipa::path(post, operation_id = "auth_login", path = "/auth/login", tag = "auth", request_body(content = crate::openapi::Object, description = "`{email, password}`"), responses((status = 200, description = "Signed in: `{user}`, with the session cookie", body = crate::openapi::Object), (status = 400, description = "Invalid input", body = crate::openapi::ErrorBody)))]
pub async fn login(
    state: AppState,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    jar: CookieJar,
    Json(body): Json<Credentials>,
) -> AppResult<(NoStore, CookieJar, axum::Json<Value>)> {
    require_local_accounts(&state)?;
    let invalid = || {
        AppError::new(
            StatusCode::UNAUTHORIZED,
            "invalid_credentials",
            "Wrong email or password. Check both and try again.",
        )
    };
    let email = Email::parse(&body.email).map_err(|_| invalid())?;
    let ip = state.site.client_ip(&headers, peer);
    state.auth_limiter.attempt(ip)?;
    state.auth_limiter.login_allowed(ip, email.as_str())?;

    let conn = state.db.conn()?;
    let found = users::find_by_email(&conn, &email).await?;
    let stored_hash = found.as_ref().and_then(|c| c.password_hash.clone());
    let password_ok = state.hasher.verify(&body.password, stored_hash).await?;
    let Some(credentials) = found.filter(|_| password_ok) else {
        tracing::info!("login failed");
        state.auth_limiter.login_failed(ip, email.as_str());
        return Err(invalid());
    };
    let user = credentials.user;
    let jar = replace_session(&state, jar, &user.id, &headers, &ip.to_string()).await?;
    if state.site.prewarm {
        state.machines.prewarm(&user.id);
    }
    Ok((NO_STORE, jar, axum::Json(json!({ "user": user }))))
}

#[utoipa::path(post, operation_id = "auth_logout", path = "/auth/logout", tag = "auth", responses((status = 204, description = "Signed out; the cookie is removed")))]
pub async fn logout(state: AppState, jar: CookieJar) -> AppResult<(StatusCode, CookieJar)> {
    if let Some(cookie) = jar.get(session::cookie_name(&state)) {
        session::end(&state, cookie.value()).await?;
    }
    Ok((StatusCode::NO_CONTENT, jar.add(session::removal_cookie(&state))))
}

/// Issues a fresh session, ending the one the browser held before (no session fixation).
async fn replace_session(
    app: &App,
    jar: CookieJar,
    user_id: &crate::domain::UserId,
    headers: &HeaderMap,
    ip: &str,
) -> AppResult<CookieJar> {
    if let Some(old) = jar.get(session::cookie_name(app)) {
        session::end(app, old.value()).await?;
    }
    let cookie = session::start(app, user_id, headers, ip).await?;
    Ok(jar.add(cookie))
}

fn require_local_accounts(app: &App) -> AppResult<()> {
    if app.site.local_accounts {
        Ok(())
    } else {
        Err(AppError::not_found("This server does not use Roost passwords. Sign in the way its operator set up."))
    }
}

/// `GET /api/auth/session`: whether this browser is signed in, always answered 200, so the
/// sign-in page can skip its form without a failed request in the console.
#[utoipa::path(get, operation_id = "auth_session_state", path = "/auth/session", tag = "auth", responses((status = 200, description = "`{signed_in}`", body = crate::openapi::Object)))]
pub async fn session_state(
    state: AppState,
    mut parts: axum::http::request::Parts,
) -> ([(axum::http::HeaderName, &'static str); 1], axum::Json<Value>) {
    use axum::extract::FromRequestParts;
    let signed_in = crate::auth::AuthUser::from_request_parts(&mut parts, &state).await.is_ok();
    (NO_STORE, axum::Json(json!({ "signed_in": signed_in })))
}
