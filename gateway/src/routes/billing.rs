//! The user's plan, credits and usage, and their own monthly budget.

use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::app::AppState;
use crate::auth::AuthUser;
use crate::db::{credits, usage_events};
use crate::domain::now_secs;
use crate::error::{AppError, AppResult};
use crate::json::Json;
use crate::llm::credit_check::{grant_monthly_allowance, month_of};

/// Usage by day covers this many days.
const USAGE_DAYS: i64 = 30;

pub async fn get(state: AppState, auth: AuthUser) -> AppResult<axum::Json<Value>> {
    let user = &auth.user_id;
    let now = now_secs();
    grant_monthly_allowance(&state, user, now).await?;
    let conn = state.db.conn()?;
    let (month_start, month_end) = month_of(now);
    let spendable = credits::spendable(&conn, user, now, month_start).await?;
    let grants: Vec<Value> = credits::live_grants(&conn, user, now)
        .await?
        .into_iter()
        .map(|g| {
            json!({"source": g.source, "amount": g.amount, "remaining": g.remaining,
                   "effective_at": g.effective_at, "expires_at": g.expires_at})
        })
        .collect();
    let recent: Vec<Value> = usage_events::recent(&conn, user, 20)
        .await?
        .into_iter()
        .map(|u| {
            json!({"at": u.at, "model": u.model, "input_tokens": u.input_tokens,
                   "output_tokens": u.output_tokens, "credits": u.credits})
        })
        .collect();
    let by_day: Vec<Value> = usage_events::by_day(&conn, user, now - USAGE_DAYS * 86_400)
        .await?
        .into_iter()
        .map(|(day, model, credits, calls)| json!({"day": day, "model": model, "credits": credits, "calls": calls}))
        .collect();
    let free = &state.catalog.free;
    let models: Vec<Value> = state
        .catalog
        .models
        .iter()
        .map(|(id, p)| json!({"model": id, "input_per_million": p.input_per_million, "output_per_million": p.output_per_million}))
        .collect();
    Ok(axum::Json(json!({
        "plan": {"name": free.name, "monthly_credits": free.monthly_credits, "channels": free.channels},
        "status": "free",
        "period_end": month_end,
        "balance": spendable.balance,
        "monthly_budget": spendable.monthly_budget,
        "spent_this_month": spendable.spent_this_month,
        "grants": grants,
        "usage": {"recent": recent, "by_day": by_day},
        "models": models,
    })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Budget {
    /// Credits per calendar month; `null` removes the cap.
    monthly_credits: Option<u64>,
}

/// The most a user may set: far beyond any real month, small enough for the database.
const MAX_BUDGET: u64 = 1_000_000_000;

pub async fn set_budget(state: AppState, auth: AuthUser, Json(budget): Json<Budget>) -> AppResult<StatusCode> {
    if budget.monthly_credits.is_some_and(|n| n > MAX_BUDGET) {
        return Err(AppError::bad_request(
            "invalid_budget",
            format!("A monthly budget can be at most {MAX_BUDGET} credits; send null for no budget."),
        ));
    }
    credits::set_monthly_budget(&*state.db.conn()?, &auth.user_id, budget.monthly_credits, now_secs()).await?;
    // A refusal for the old budget no longer explains the next failure.
    state.credit_refusals.forget(&auth.user_id);
    Ok(StatusCode::NO_CONTENT)
}
