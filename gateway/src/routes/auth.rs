//! Local accounts: sign up, log in, log out.

use std::net::SocketAddr;

use axum::extract::ConnectInfo;
use axum::http::{HeaderMap, StatusCode};
use axum_extra::extract::CookieJar;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::app::{App, AppState};
use crate::auth::session;
use crate::config::SignupPolicy;
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

/// `POST /api/auth/signup`: credentials, and an invite code when sign-ups need one.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignupRequest {
    email: String,
    password: String,
    invite_code: Option<String>,
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
    Json(body): Json<SignupRequest>,
) -> AppResult<(StatusCode, NoStore, CookieJar, axum::Json<Value>)> {
    require_local_accounts(&state)?;
    let invite = match state.site.signups {
        SignupPolicy::Open => None,
        SignupPolicy::Closed => return Err(crate::auth::signup_refusal(users::Refusal::Closed)),
        SignupPolicy::Invite => match body.invite_code.as_deref().map(str::trim).filter(|c| !c.is_empty()) {
            Some(code) if code.len() <= 100 => Some(crate::auth::invite::hash(code)),
            Some(_) => return Err(crate::auth::signup_refusal(users::Refusal::InviteInvalid)),
            None => return Err(crate::auth::signup_refusal(users::Refusal::InviteRequired)),
        },
    };
    let email = Email::parse(&body.email)?;
    let password = Password::parse(body.password)?;
    let ip = state.site.client_ip(&headers, peer);
    state.auth_limiter.attempt(ip)?;

    let hash = state.hasher.hash(password.expose()).await?;
    let conn = state.db.conn()?;
    let created = users::create_local(&conn, &email, &hash, state.accounts, invite.as_deref()).await;
    let user = created.map_err(|e| match e {
        users::CreateError::EmailTaken => AppError::conflict(
            "email_taken",
            "An account with this email already exists. Sign in instead, or use another email.",
        ),
        users::CreateError::AccountLimit => AppError::account_limit(),
        users::CreateError::InviteInvalid => crate::auth::signup_refusal(users::Refusal::InviteInvalid),
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
    if credentials.suspended_at.is_some() {
        tracing::info!(user_id = %credentials.user.id, "login refused: the account is suspended");
        return Err(crate::auth::extract::suspended());
    }
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

/// `GET /api/auth/policy`: what the sign-in and sign-up pages offer: local accounts, who may
/// sign up, and whether a forgotten password can be mailed.
#[utoipa::path(get, operation_id = "auth_policy", path = "/auth/policy", tag = "auth", responses((status = 200, description = "`{local_accounts, signups, password_reset_mail}`", body = crate::openapi::Object)))]
pub async fn policy(state: AppState) -> axum::Json<Value> {
    axum::Json(json!({
        "local_accounts": state.site.local_accounts,
        "signups": state.site.signups,
        "password_reset_mail": state.mailer.is_some(),
    }))
}

/// `POST /api/auth/reset`: a reset link's token and the new password.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResetRequest {
    token: String,
    new_password: String,
}

/// Sets a new password with a one-time link and signs out every session of the account.
#[utoipa::path(post, operation_id = "auth_reset", path = "/auth/reset", tag = "auth", request_body(content = crate::openapi::Object, description = "`{token, new_password}`"), responses((status = 200, description = "The password is set; every session of the account ended", body = crate::openapi::Object), (status = 400, description = "Invalid input", body = crate::openapi::ErrorBody), (status = 404, description = "Local accounts are off", body = crate::openapi::ErrorBody), (status = 429, description = "Too many attempts", body = crate::openapi::ErrorBody)))]
pub async fn reset_password(
    state: AppState,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Json(body): Json<ResetRequest>,
) -> AppResult<(NoStore, axum::Json<Value>)> {
    require_local_accounts(&state)?;
    let ip = state.site.client_ip(&headers, peer);
    state.auth_limiter.attempt(ip)?;
    let password = Password::parse(body.new_password)?;
    let unusable = || {
        AppError::bad_request(
            "reset_link_invalid",
            "This reset link is not valid any more: links work once, for 30 minutes. Ask for a new one.",
        )
    };
    if body.token.len() > 100 {
        return Err(unusable());
    }
    let token_hash = crate::auth::reset::hash(&body.token);
    let conn = state.db.conn()?;
    // Checked before the slow hash, so a stale link is answered at once.
    if crate::db::password_resets::peek(&conn, &token_hash, crate::domain::now_secs()).await?.is_none() {
        return Err(unusable());
    }
    let hash = state.hasher.hash(password.expose()).await?;
    let redeemed = crate::db::password_resets::redeem(&conn, &token_hash, &hash, crate::domain::now_secs()).await?;
    let Some((user, ended)) = redeemed else {
        return Err(unusable());
    };
    for token_hash in ended {
        state.relays.revoke(crate::auth::Revoked::Session { user: user.clone(), token_hash });
    }
    tracing::info!(user_id = %user, "password reset with a link; every session ended");
    Ok((NO_STORE, axum::Json(json!({ "reset": true }))))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ForgotRequest {
    email: String,
}

/// The one answer to `POST /api/auth/forgot`, whether the address has an account or not.
const FORGOT_ANSWER: &str =
    "If an account uses this email, a link to set a new password is on its way. It works once, for 30 minutes.";

/// Mails a reset link when mail is configured. Answers the same sentence for every well-formed
/// address, at once: the lookup and the delivery happen in the background.
#[utoipa::path(post, operation_id = "auth_forgot", path = "/auth/forgot", tag = "auth", request_body(content = crate::openapi::Object, description = "`{email}`"), responses((status = 202, description = "The same sentence for every address", body = crate::openapi::Object), (status = 400, description = "Invalid input", body = crate::openapi::ErrorBody), (status = 404, description = "This server sends no mail", body = crate::openapi::ErrorBody), (status = 429, description = "Too many attempts", body = crate::openapi::ErrorBody)))]
pub async fn forgot_password(
    state: AppState,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Json(body): Json<ForgotRequest>,
) -> AppResult<(StatusCode, axum::Json<Value>)> {
    require_local_accounts(&state)?;
    let Some(mailer) = state.mailer.clone() else {
        return Err(AppError::not_found(
            "This server sends no mail. Ask its operator for a link to set a new password.",
        ));
    };
    let email = Email::parse(&body.email)?;
    state.auth_limiter.attempt(state.site.client_ip(&headers, peer))?;
    if mailer.take_turn(&email) {
        let state = state.clone();
        tokio::spawn(async move {
            let link = async {
                let conn = state.db.conn()?;
                let Some(found) = users::find_by_email(&conn, &email).await? else { return anyhow::Ok(None) };
                if found.password_hash.is_none() || found.suspended_at.is_some() {
                    return Ok(None);
                }
                Ok(Some(crate::auth::reset::issue(&conn, &found.user.id, &state.site.public_origin).await?))
            };
            match link.await {
                Ok(Some(link)) => mailer.send_reset_link(&email, &link).await,
                Ok(None) => tracing::info!("a reset link was asked for an address with no local account"),
                Err(e) => tracing::warn!(error = %e, "making a reset link failed"),
            }
        });
    }
    Ok((StatusCode::ACCEPTED, axum::Json(json!({ "message": FORGOT_ANSWER }))))
}
