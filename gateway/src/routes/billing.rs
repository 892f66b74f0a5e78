//! The user's plan, credits and usage, their own monthly budget, and the way to Stripe: Checkout
//! for a plan or a pack, the Customer Portal for everything else.

use axum::http::StatusCode;
use billing::refill::LOW_BALANCE_CREDITS;
use billing::stripe::client::{NewCheckout, Purchase};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::app::AppState;
use crate::auth::AuthUser;
use crate::db::{auto_refills, credits, usage_events};
use crate::domain::now_secs;
use crate::error::{AppError, AppResult};
use crate::json::Json;
use crate::llm::credit_check::{grant_monthly_allowance, month_of};
use crate::stripe_sync::{self, StripeBilling, call_failed};

/// Usage by day covers this many days.
const USAGE_DAYS: i64 = 30;

#[utoipa::path(get, operation_id = "billing_get", path = "/billing", tag = "billing", security(("session" = []), ("api_token" = [])), responses((status = 200, description = "Plan, balance, usage and settings", body = crate::openapi::Object), (status = 401, description = "Not signed in", body = crate::openapi::ErrorBody)))]
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
    let current = stripe_sync::current_plan(&state, &conn, user, now).await?;
    let plan = current.plan;
    let offers = |entries: Vec<Value>| if state.stripe.is_some() { entries } else { Vec::new() };
    let plans = offers(
        state
            .catalog
            .plans
            .iter()
            .map(|(id, p)| {
                json!({"id": id, "name": p.name, "monthly_credits": p.monthly_credits, "amount_cents": p.amount_cents})
            })
            .collect(),
    );
    let packs = offers(
        state
            .catalog
            .packs
            .iter()
            .map(|(id, p)| json!({"id": id, "name": p.name, "credits": p.credits, "amount_cents": p.amount_cents}))
            .collect(),
    );
    let models: Vec<Value> = state
        .catalog
        .models
        .iter()
        .map(|(id, p)| json!({"model": id, "input_per_million": p.input_per_million, "output_per_million": p.output_per_million}))
        .collect();
    let refill = auto_refills::settings(&conn, user).await?;
    let month = crate::stripe_sync::refill::month_key(now);
    let refilled: i64 = auto_refills::attempts(&conn, user, &month)
        .await?
        .iter()
        .filter(|a| a.status == "succeeded")
        .map(|a| a.credits)
        .sum();
    let failure = auto_refills::last_failure(&conn, user).await?;
    // Only a failure since the settings were last saved still stands.
    let failure = failure.filter(|(at, _)| refill.as_ref().is_none_or(|r| *at >= r.updated_at));
    let auto_refill = json!({
        "enabled": refill.as_ref().is_some_and(|r| r.enabled),
        "pack": refill.as_ref().map(|r| r.pack.clone()),
        "monthly_cap": refill.as_ref().map(|r| r.monthly_cap),
        "refilled_this_month": refilled,
        "last_failure": failure.map(|(at, message)| json!({"at": at, "message": message})),
    });
    Ok(axum::Json(json!({
        "auto_refill": auto_refill,
        "low_balance": spendable.balance < LOW_BALANCE_CREDITS,
        "low_balance_below": LOW_BALANCE_CREDITS,
        "plan": {"name": plan.name, "monthly_credits": plan.monthly_credits, "channels": plan.channels,
                 "id": current.price_id},
        "status": current.status,
        "period_end": current.period_end.unwrap_or(month_end),
        "cancel_at_period_end": current.cancel_at_period_end,
        "billing": state.stripe.is_some(),
        "plans": plans,
        "packs": packs,
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

#[utoipa::path(put, operation_id = "billing_set_budget", path = "/billing/budget", tag = "billing", request_body(content = crate::openapi::Object, description = "`{monthly_credits}` (or null)"), security(("session" = []), ("api_token" = [])), responses((status = 204, description = "Saved"), (status = 400, description = "Invalid input", body = crate::openapi::ErrorBody), (status = 401, description = "Not signed in", body = crate::openapi::ErrorBody)))]
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

/// Checkout and the Portal need Stripe; without it, a plain sentence.
fn stripe_of(state: &AppState) -> AppResult<&StripeBilling> {
    state
        .stripe
        .as_ref()
        .ok_or_else(|| AppError::new(StatusCode::SERVICE_UNAVAILABLE, "billing_off", "Billing is off on this server."))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CheckoutRequest {
    /// A plan's Stripe Price ID, from `GET /api/billing`'s `plans`.
    plan: Option<String>,
    /// A pack's Stripe Price ID, from `packs`.
    pack: Option<String>,
}

/// `{plan}` or `{pack}` → `{url}`: Stripe Checkout, or the Portal for a user who already has a
/// subscription (a plan change is made there, never with a second subscription).
#[utoipa::path(post, operation_id = "billing_checkout", path = "/billing/checkout", tag = "billing", request_body(content = crate::openapi::Object, description = "`{plan}` or `{pack}`"), security(("session" = []), ("api_token" = [])), responses((status = 200, description = "`{url}` of a Stripe Checkout page", body = crate::openapi::Object), (status = 400, description = "Invalid input", body = crate::openapi::ErrorBody), (status = 401, description = "Not signed in", body = crate::openapi::ErrorBody)))]
pub async fn checkout(
    state: AppState,
    auth: AuthUser,
    Json(request): Json<CheckoutRequest>,
) -> AppResult<axum::Json<Value>> {
    let stripe = stripe_of(&state)?;
    let user = &auth.user_id;
    let purchase = match (request.plan.as_deref(), request.pack.as_deref()) {
        (Some(price), None) if state.catalog.plan(price).is_some() => Purchase::Subscription { price },
        (None, Some(price)) if state.catalog.pack(price).is_some() => Purchase::Pack { price },
        (Some(_), None) => return Err(AppError::bad_request("unknown_plan", "There is no such plan on this server.")),
        (None, Some(_)) => return Err(AppError::bad_request("unknown_pack", "There is no such pack on this server.")),
        _ => {
            return Err(AppError::bad_request(
                "invalid_checkout",
                "Send either a plan or a pack, by the id GET /api/billing lists.",
            ));
        }
    };
    let customer = stripe_sync::ensure_customer(&state, stripe, user).await?;
    if matches!(purchase, Purchase::Subscription { .. })
        && stripe_sync::has_live_subscription(&*state.db.conn()?, user).await?
    {
        return portal_url(&state, stripe, &customer).await;
    }
    let origin = &state.site.public_origin;
    let success_url = format!("{origin}/billing/success?session_id={{CHECKOUT_SESSION_ID}}");
    let cancel_url = format!("{origin}/billing");
    let checkout = NewCheckout {
        purchase,
        customer: &customer,
        user_id: user.as_str(),
        success_url: &success_url,
        cancel_url: &cancel_url,
    };
    let key = format!("roost-checkout-{}", uuid::Uuid::new_v4());
    let session = stripe
        .client
        .create_checkout(&checkout, &key)
        .await
        .map_err(|e| call_failed("creating a Checkout Session", &e))?;
    let url =
        session.url.ok_or_else(|| AppError::internal(anyhow::anyhow!("Stripe returned a session without a url")))?;
    Ok(axum::Json(json!({ "url": url })))
}

/// `{url}` of the Customer Portal: plan changes, cards, invoices, cancellation.
#[utoipa::path(post, operation_id = "billing_portal", path = "/billing/portal", tag = "billing", security(("session" = []), ("api_token" = [])), responses((status = 200, description = "`{url}` of the Stripe billing portal", body = crate::openapi::Object), (status = 401, description = "Not signed in", body = crate::openapi::ErrorBody)))]
pub async fn portal(state: AppState, auth: AuthUser) -> AppResult<axum::Json<Value>> {
    let stripe = stripe_of(&state)?;
    let customer =
        crate::db::billing_customers::customer_of(&*state.db.conn()?, &auth.user_id).await?.ok_or_else(|| {
            AppError::conflict("no_billing_account", "You have no billing account yet: choose a plan or a pack first.")
        })?;
    portal_url(&state, stripe, &customer).await
}

async fn portal_url(state: &AppState, stripe: &StripeBilling, customer: &str) -> AppResult<axum::Json<Value>> {
    let return_url = format!("{}/billing", state.site.public_origin);
    let key = format!("roost-portal-{}", uuid::Uuid::new_v4());
    let session = stripe
        .client
        .create_portal(customer, &return_url, &key)
        .await
        .map_err(|e| call_failed("creating a Portal session", &e))?;
    Ok(axum::Json(json!({ "url": session.url })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AutoRefill {
    enabled: bool,
    /// A pack's Stripe Price ID, from `GET /api/billing`'s `packs`.
    pack: String,
    /// Credits refilled per calendar month, at most.
    monthly_cap: u64,
}

/// `{enabled, pack, monthly_cap}`: buy `pack` with the saved card whenever the balance runs low,
/// at most `monthly_cap` credits a month. Saving again also allows a retry after a failure.
#[utoipa::path(put, operation_id = "billing_set_auto_refill", path = "/billing/auto-refill", tag = "billing", request_body(content = crate::openapi::Object, description = "`{enabled, pack, below}`"), security(("session" = []), ("api_token" = [])), responses((status = 204, description = "Saved"), (status = 400, description = "Invalid input", body = crate::openapi::ErrorBody), (status = 401, description = "Not signed in", body = crate::openapi::ErrorBody)))]
pub async fn set_auto_refill(state: AppState, auth: AuthUser, Json(body): Json<AutoRefill>) -> AppResult<StatusCode> {
    stripe_of(&state)?;
    let Some(pack) = state.catalog.pack(&body.pack) else {
        return Err(AppError::bad_request("unknown_pack", "There is no such pack on this server."));
    };
    if pack.amount_cents.is_none() {
        return Err(AppError::bad_request(
            "pack_not_refillable",
            "That pack has no price set on this server, so it cannot be an auto-refill.",
        ));
    }
    if body.monthly_cap < pack.credits || body.monthly_cap > MAX_BUDGET {
        return Err(AppError::bad_request(
            "invalid_monthly_cap",
            format!("The monthly cap must be at least the pack's {} credits and at most {MAX_BUDGET}.", pack.credits),
        ));
    }
    let settings = auto_refills::Settings {
        enabled: body.enabled,
        pack: body.pack,
        monthly_cap: i64::try_from(body.monthly_cap).unwrap_or(i64::MAX),
        updated_at: now_secs(),
    };
    auto_refills::save(&*state.db.conn()?, &auth.user_id, &settings).await?;
    if let Some(stripe) = state.stripe.as_ref() {
        stripe.wake.notify_one();
    }
    Ok(StatusCode::NO_CONTENT)
}
