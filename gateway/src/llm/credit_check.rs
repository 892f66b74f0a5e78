//! Before a model call goes upstream: the model must have a price, and the user must have
//! credits left and be under their own monthly budget. A refusal is a 400, never a 401 or 402:
//! OpenClaw locks a provider credential for ten minutes (across restarts) after those.

use billing::plans::ModelPrice;

use crate::app::App;
use crate::db::credits::{self, GrantSource, NewGrant};
use crate::domain::{UserId, now_secs};
use crate::error::{AppError, AppResult};

/// Shown in the chat (and in the API's error) when a call is refused for credits.
pub const OUT_OF_CREDITS: &str = "You're out of credits, so your agent cannot answer. Buy more on the Usage page.";
pub const BUDGET_REACHED: &str =
    "You have reached the monthly budget you set, so your agent cannot answer. Raise it on the Usage page.";

/// The price the call will be charged at, once it is allowed.
pub async fn check(app: &App, user: &UserId, model: &str) -> AppResult<ModelPrice> {
    let Some(price) = app.catalog.price(model) else {
        let offered = app.catalog.offered();
        let list = if offered.is_empty() { "none".to_string() } else { offered.join(", ") };
        return Err(AppError::bad_request(
            "model_not_offered",
            format!("The model {model:?} is not offered on this Roost server. Models on offer: {list}."),
        ));
    };
    let now = now_secs();
    let (month_start, _) = month_of(now);
    grant_monthly_allowance(app, user, now).await?;
    let spendable = credits::spendable(&*app.db.conn()?, user, now, month_start).await?;
    if spendable.balance < 1 {
        app.credit_refusals.note(user, OUT_OF_CREDITS);
        return Err(AppError::bad_request("out_of_credits", OUT_OF_CREDITS));
    }
    if spendable.budget_reached() {
        app.credit_refusals.note(user, BUDGET_REACHED);
        return Err(AppError::bad_request("budget_reached", BUDGET_REACHED));
    }
    Ok(price)
}

/// The free plan's credits for this calendar month (UTC), granted once per user and month, and
/// lost at its end; not to a user whose subscription gives them a plan.
pub async fn grant_monthly_allowance(app: &App, user: &UserId, now: i64) -> AppResult<()> {
    let plan = &app.catalog.free;
    if plan.monthly_credits == 0 {
        return Ok(());
    }
    let (start, end) = month_of(now);
    let source_ref = format!("free:{user}:{start}");
    let conn = app.db.conn()?;
    if credits::has_grant(&conn, &source_ref).await? {
        return Ok(());
    }
    // A paying user's month comes with their plan's allowance, paid invoice by paid invoice.
    if crate::stripe_sync::has_paid_access(&conn, user, now).await? {
        return Ok(());
    }
    let grant = NewGrant {
        source: GrantSource::FreeAllowance,
        source_ref: &source_ref,
        amount: plan.monthly_credits,
        priority: 20,
        effective_at: start,
        expires_at: Some(end),
    };
    credits::grant_in_turn(&app.db, user, &grant, now).await?;
    Ok(())
}

/// The first second of this UTC month, and of the next.
pub fn month_of(now: i64) -> (i64, i64) {
    let at = time::OffsetDateTime::from_unix_timestamp(now).unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    let first = |year: i32, month: time::Month| {
        time::Date::from_calendar_date(year, month, 1).map(|d| d.midnight().assume_utc().unix_timestamp()).unwrap_or(0)
    };
    let start = first(at.year(), at.month());
    let (year, month) = match at.month() {
        time::Month::December => (at.year() + 1, time::Month::January),
        m => (at.year(), m.next()),
    };
    (start, first(year, month))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn months_start_and_end_at_utc_midnight() {
        // 2026-12-01T11:00:00Z
        assert_eq!(month_of(1_796_122_800), (1_796_083_200, 1_798_761_600), "December runs into January");
        assert_eq!(month_of(1_796_083_200).0, 1_796_083_200, "the first second is in its month");
        assert_eq!(month_of(1_796_083_199).1, 1_796_083_200, "the last second of November");
    }
}
