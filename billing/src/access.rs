//! What a Stripe subscription status means for access (research: stripe-billing §6.4). Pure.

/// How long a `past_due` subscription keeps its plan after the first failed payment: Stripe's
/// Smart Retries run for up to two weeks; a week is the research's suggestion.
pub const PAST_DUE_GRACE_SECS: i64 = 7 * 86_400;

/// Whether a subscription in `status` gives its plan now. `past_due_since` is when Roost first
/// saw it `past_due`.
pub fn has_access(status: &str, past_due_since: Option<i64>, now: i64) -> bool {
    match status {
        "active" | "trialing" => true,
        "past_due" => past_due_since.is_none_or(|since| now < since.saturating_add(PAST_DUE_GRACE_SECS)),
        // incomplete, incomplete_expired, unpaid, paused, canceled, and anything new.
        _ => false,
    }
}

/// Whether the subscription can still change (so a new plan is a change in the Portal, not a
/// second Checkout).
pub fn is_live(status: &str) -> bool {
    !matches!(status, "canceled" | "incomplete_expired")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn access_follows_the_status_and_past_due_has_a_grace_period() {
        for status in ["active", "trialing"] {
            assert!(has_access(status, None, 0));
        }
        for status in ["canceled", "unpaid", "incomplete", "incomplete_expired", "paused", "new_status"] {
            assert!(!has_access(status, None, 0), "{status}");
        }
        assert!(has_access("past_due", Some(100), 100 + PAST_DUE_GRACE_SECS - 1));
        assert!(!has_access("past_due", Some(100), 100 + PAST_DUE_GRACE_SECS));
        assert!(has_access("past_due", Some(i64::MAX), 0), "no overflow");
        assert!(is_live("past_due") && !is_live("canceled") && !is_live("incomplete_expired"));
    }
}
