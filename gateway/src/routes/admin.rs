//! `/api/admin/*`: the operator's view of every account, and what they may do to one. Only
//! `AdminUser` gets in (others get 403, audited); every change is audited by `crate::operator`.

use axum::extract::{Path, Query};
use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::app::AppState;
use crate::auth::{AdminUser, Revoked};
use crate::db::admin_audit::Actor;
use crate::db::{admin_audit, admin_views, credits, invites, machine_events};
use crate::domain::{UserId, now_secs};
use crate::error::{AppError, AppResult};
use crate::json::Json;
use crate::operator::{self, Failure};

const PAGE_MAX: u32 = 200;
const DETAIL_ROWS: u32 = 50;

impl From<Failure> for AppError {
    fn from(failure: Failure) -> Self {
        match failure {
            Failure::Refused(refused) => AppError::bad_request("invalid_request", refused.0),
            Failure::Db(e) => e.into(),
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Page {
    limit: Option<u32>,
    offset: Option<u32>,
}

/// `GET /api/admin/users`: accounts with their machine's state, age, memory and last activity.
#[utoipa::path(get, operation_id = "admin_users", path = "/admin/users", tag = "admin", params(("limit" = Option<u32>, Query, description = "At most 200"), ("offset" = Option<u32>, Query, description = "Rows to skip")), security(("session" = [])), responses((status = 200, description = "`{users, now}`", body = crate::openapi::Object), (status = 401, description = "Not signed in", body = crate::openapi::ErrorBody), (status = 403, description = "Not an admin, or an API token", body = crate::openapi::ErrorBody)))]
pub async fn users(state: AppState, AdminUser(_): AdminUser, Query(page): Query<Page>) -> AppResult<axum::Json<Value>> {
    let limit = page.limit.unwrap_or(100).clamp(1, PAGE_MAX);
    let rows = admin_views::users(&*state.db.conn()?, limit, page.offset.unwrap_or(0)).await?;
    let mut users = Vec::with_capacity(rows.len());
    for row in rows {
        users.push(with_live_facts(&state, row).await);
    }
    Ok(axum::Json(json!({ "users": users, "now": now_secs() })))
}

/// What only this process knows: memory now, and use since the last database write.
async fn with_live_facts(state: &AppState, row: admin_views::UserRow) -> Value {
    let (memory, last_active) = match UserId::parse(&row.id) {
        Ok(id) => (
            state.machines.memory_bytes(&id).await,
            state.machines.activity().last_active(&id).map(|t| t.elapsed().as_secs()),
        ),
        Err(_) => (None, None),
    };
    let mut value = serde_json::to_value(&row).unwrap_or(Value::Null);
    value["memory_bytes"] = json!(memory);
    value["last_active_secs_ago"] = json!(last_active);
    value
}

async fn target(state: &AppState, raw: &str) -> AppResult<(UserId, admin_views::UserRow)> {
    let missing = || AppError::not_found("There is no such account.");
    let id = UserId::parse(raw).map_err(|_| missing())?;
    let row = admin_views::user(&*state.db.conn()?, id.as_str()).await?.ok_or_else(missing)?;
    Ok((id, row))
}

/// `GET /api/admin/users/{id}`: the account, its lifecycle events, its ledger and its audit rows.
#[utoipa::path(get, operation_id = "admin_user", path = "/admin/users/{id}", tag = "admin", params(("id" = String, Path, description = "The user id")), security(("session" = [])), responses((status = 200, description = "One account with its machine, credits and audit", body = crate::openapi::Object), (status = 401, description = "Not signed in", body = crate::openapi::ErrorBody), (status = 403, description = "Not an admin, or an API token", body = crate::openapi::ErrorBody), (status = 404, description = "Not found", body = crate::openapi::ErrorBody)))]
pub async fn user(state: AppState, AdminUser(_): AdminUser, Path(id): Path<String>) -> AppResult<axum::Json<Value>> {
    let (id, row) = target(&state, &id).await?;
    let events: Vec<Value> = machine_events::recent(&state.db, &id, DETAIL_ROWS)
        .await?
        .into_iter()
        .map(|e| json!({ "at": e.at, "state": e.state, "stage": e.stage, "reason": e.reason }))
        .collect();
    let conn = state.db.conn()?;
    let ledger = credits::ledger(&conn, &id, DETAIL_ROWS).await?;
    let audit = admin_audit::recent(&conn, Some(id.as_str()), DETAIL_ROWS).await?;
    drop(conn);
    Ok(axum::Json(json!({
        "user": with_live_facts(&state, row).await,
        "events": events,
        "ledger": ledger,
        "audit": audit,
        "now": now_secs(),
    })))
}

#[utoipa::path(post, operation_id = "admin_suspend", path = "/admin/users/{id}/suspend", tag = "admin", params(("id" = String, Path, description = "The user id")), security(("session" = [])), responses((status = 204, description = "Suspended: signed out, agent stopped"), (status = 400, description = "Invalid input", body = crate::openapi::ErrorBody), (status = 401, description = "Not signed in", body = crate::openapi::ErrorBody), (status = 403, description = "Not an admin, or an API token", body = crate::openapi::ErrorBody), (status = 404, description = "Not found", body = crate::openapi::ErrorBody)))]
pub async fn suspend(state: AppState, AdminUser(admin): AdminUser, Path(id): Path<String>) -> AppResult<StatusCode> {
    let (id, _) = target(&state, &id).await?;
    if operator::suspend(&state.db, &Actor::User(&admin.user_id), &id).await? {
        state.relays.revoke(Revoked::User(id.clone()));
        state.relays.agent_stopped(&id);
        if let Err(e) = state.machines.stop_because(&id, "stopped: the account was suspended").await {
            // The suspended-accounts sweep tries again.
            tracing::warn!(user_id = %id, error = %e.message, "stopping a suspended account's agent failed");
        }
    }
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(post, operation_id = "admin_unsuspend", path = "/admin/users/{id}/unsuspend", tag = "admin", params(("id" = String, Path, description = "The user id")), security(("session" = [])), responses((status = 204, description = "Can sign in again"), (status = 401, description = "Not signed in", body = crate::openapi::ErrorBody), (status = 403, description = "Not an admin, or an API token", body = crate::openapi::ErrorBody), (status = 404, description = "Not found", body = crate::openapi::ErrorBody)))]
pub async fn unsuspend(state: AppState, AdminUser(admin): AdminUser, Path(id): Path<String>) -> AppResult<StatusCode> {
    let (id, _) = target(&state, &id).await?;
    operator::unsuspend(&state.db, &Actor::User(&admin.user_id), &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `POST /api/admin/users/{id}/restart`: what the user's own Restart does.
#[utoipa::path(post, operation_id = "admin_restart", path = "/admin/users/{id}/restart", tag = "admin", params(("id" = String, Path, description = "The user id")), security(("session" = [])), responses((status = 202, description = "The agent is restarting"), (status = 401, description = "Not signed in", body = crate::openapi::ErrorBody), (status = 403, description = "Not an admin, or an API token", body = crate::openapi::ErrorBody), (status = 404, description = "Not found", body = crate::openapi::ErrorBody)))]
pub async fn restart(state: AppState, AdminUser(admin): AdminUser, Path(id): Path<String>) -> AppResult<StatusCode> {
    let (id, row) = target(&state, &id).await?;
    refuse_if_suspended(&row)?;
    if let Some(refusal) = state.machines.start_refusal(&id).await {
        return Err(AppError::conflict(refusal.code, refusal.message));
    }
    operator::audit(&state.db, &Actor::User(&admin.user_id), "machine.restart", Some(&id), "").await?;
    state.machines.stop_because(&id, "restarting at an admin's request").await.map_err(start_error)?;
    start_in_background(&state, id);
    Ok(StatusCode::ACCEPTED)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Reprovision {
    delete_data: bool,
}

/// `POST /api/admin/users/{id}/reprovision {"delete_data": true}`: destroys the agent with its
/// data, as account deletion does, and provisions a fresh one.
#[utoipa::path(post, operation_id = "admin_reprovision", path = "/admin/users/{id}/reprovision", tag = "admin", params(("id" = String, Path, description = "The user id")), request_body(content = crate::openapi::Object, description = "`{delete_data: true}`"), security(("session" = [])), responses((status = 202, description = "A fresh agent is on its way"), (status = 400, description = "Invalid input", body = crate::openapi::ErrorBody), (status = 401, description = "Not signed in", body = crate::openapi::ErrorBody), (status = 403, description = "Not an admin, or an API token", body = crate::openapi::ErrorBody), (status = 404, description = "Not found", body = crate::openapi::ErrorBody)))]
pub async fn reprovision(
    state: AppState,
    AdminUser(admin): AdminUser,
    Path(id): Path<String>,
    Json(body): Json<Reprovision>,
) -> AppResult<StatusCode> {
    let (id, row) = target(&state, &id).await?;
    if !body.delete_data {
        return Err(AppError::bad_request(
            "confirm_required",
            "Re-provisioning deletes the agent's data. Send {\"delete_data\": true} to go ahead.",
        ));
    }
    refuse_if_suspended(&row)?;
    if let Some(refusal) = state.machines.start_refusal(&id).await {
        return Err(AppError::conflict(refusal.code, refusal.message));
    }
    operator::audit(&state.db, &Actor::User(&admin.user_id), "machine.reprovision", Some(&id), "").await?;
    state.relays.agent_stopped(&id);
    state
        .machines
        .destroy_because(&id, "re-provisioning at an admin's request", "deleted to be provisioned again")
        .await
        .map_err(start_error)?;
    start_in_background(&state, id);
    Ok(StatusCode::ACCEPTED)
}

fn refuse_if_suspended(row: &admin_views::UserRow) -> AppResult<()> {
    if row.suspended_at.is_some() {
        return Err(AppError::conflict(
            "account_suspended",
            "This account is suspended, so its agent stays stopped. Unsuspend it first.",
        ));
    }
    Ok(())
}

fn start_in_background(state: &AppState, user: UserId) {
    let machines = state.machines.clone();
    tokio::spawn(async move {
        if let Err(e) = machines.ensure_ready(&user).await {
            tracing::warn!(user_id = %user, error = %e.message, "an admin's restart failed");
        }
    });
}

fn start_error(e: crate::machines::StartError) -> AppError {
    AppError::new(StatusCode::SERVICE_UNAVAILABLE, e.code, e.message)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Adjustment {
    delta: i64,
    reason: String,
}

/// `POST /api/admin/users/{id}/credits {delta, reason}`: through the ledger, never a balance write.
#[utoipa::path(post, operation_id = "admin_adjust_credits", path = "/admin/users/{id}/credits", tag = "admin", params(("id" = String, Path, description = "The user id")), request_body(content = crate::openapi::Object, description = "`{delta, reason}`"), security(("session" = [])), responses((status = 200, description = "`{moved, reference, balance}`", body = crate::openapi::Object), (status = 400, description = "Invalid input", body = crate::openapi::ErrorBody), (status = 401, description = "Not signed in", body = crate::openapi::ErrorBody), (status = 403, description = "Not an admin, or an API token", body = crate::openapi::ErrorBody), (status = 404, description = "Not found", body = crate::openapi::ErrorBody)))]
pub async fn adjust_credits(
    state: AppState,
    AdminUser(admin): AdminUser,
    Path(id): Path<String>,
    Json(body): Json<Adjustment>,
) -> AppResult<axum::Json<Value>> {
    let (id, _) = target(&state, &id).await?;
    let adjusted =
        operator::adjust_credits(&state.db, &Actor::User(&admin.user_id), &id, body.delta, &body.reason).await?;
    let balance = admin_views::user(&*state.db.conn()?, id.as_str()).await?.map(|r| r.balance);
    Ok(axum::Json(json!({ "moved": adjusted.moved, "reference": adjusted.reference, "balance": balance })))
}

#[utoipa::path(get, operation_id = "admin_list_invites", path = "/admin/invites", tag = "admin", security(("session" = [])), responses((status = 200, description = "`{invites}`", body = crate::openapi::Object), (status = 401, description = "Not signed in", body = crate::openapi::ErrorBody), (status = 403, description = "Not an admin, or an API token", body = crate::openapi::ErrorBody)))]
pub async fn list_invites(state: AppState, AdminUser(_): AdminUser) -> AppResult<axum::Json<Value>> {
    let invites = invites::list(&*state.db.conn()?, PAGE_MAX).await?;
    Ok(axum::Json(json!({ "invites": invites, "now": now_secs() })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewInvite {
    uses: Option<u32>,
    expires_in: Option<String>,
}

/// `POST /api/admin/invites {uses?, expires_in?}`: the code is in this answer only.
#[utoipa::path(post, operation_id = "admin_create_invite", path = "/admin/invites", tag = "admin", request_body(content = crate::openapi::Object, description = "`{uses?, expires_in?}`"), security(("session" = [])), responses((status = 201, description = "The invite, with its code (shown once)", body = crate::openapi::Object), (status = 400, description = "Invalid input", body = crate::openapi::ErrorBody), (status = 401, description = "Not signed in", body = crate::openapi::ErrorBody), (status = 403, description = "Not an admin, or an API token", body = crate::openapi::ErrorBody)))]
pub async fn create_invite(
    state: AppState,
    AdminUser(admin): AdminUser,
    Json(body): Json<NewInvite>,
) -> AppResult<(StatusCode, axum::Json<Value>)> {
    let lifetime = body.expires_in.as_deref().unwrap_or("7d");
    let made =
        operator::create_invite(&state.db, &Actor::User(&admin.user_id), body.uses.unwrap_or(1), lifetime).await?;
    let body = json!({ "code": made.code, "id": made.id, "uses": made.uses, "expires_at": made.expires_at });
    Ok((StatusCode::CREATED, axum::Json(body)))
}

#[utoipa::path(delete, operation_id = "admin_revoke_invite", path = "/admin/invites/{id}", tag = "admin", params(("id" = String, Path, description = "The invite id")), security(("session" = [])), responses((status = 204, description = "Revoked"), (status = 401, description = "Not signed in", body = crate::openapi::ErrorBody), (status = 403, description = "Not an admin, or an API token", body = crate::openapi::ErrorBody), (status = 404, description = "Not found", body = crate::openapi::ErrorBody)))]
pub async fn revoke_invite(
    state: AppState,
    AdminUser(admin): AdminUser,
    Path(id): Path<String>,
) -> AppResult<StatusCode> {
    if !operator::revoke_invite(&state.db, &Actor::User(&admin.user_id), &id).await? {
        return Err(AppError::not_found("There is no such unrevoked invite code."));
    }
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditQuery {
    limit: Option<u32>,
}

#[utoipa::path(get, operation_id = "admin_audit", path = "/admin/audit", tag = "admin", params(("limit" = Option<u32>, Query, description = "At most 200")), security(("session" = [])), responses((status = 200, description = "`{audit}`: newest first", body = crate::openapi::Object), (status = 401, description = "Not signed in", body = crate::openapi::ErrorBody), (status = 403, description = "Not an admin, or an API token", body = crate::openapi::ErrorBody)))]
pub async fn audit(
    state: AppState,
    AdminUser(_): AdminUser,
    Query(query): Query<AuditQuery>,
) -> AppResult<axum::Json<Value>> {
    let limit = query.limit.unwrap_or(100).clamp(1, PAGE_MAX);
    let rows = admin_audit::recent(&*state.db.conn()?, None, limit).await?;
    Ok(axum::Json(json!({ "audit": rows })))
}
