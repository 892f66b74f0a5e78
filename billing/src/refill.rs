//! Auto-refill rules (pure): when a refill is due, and how its Idempotency-Key is made.

/// Below this many credits the app shows a low-balance notice, and an auto-refill is due.
pub const LOW_BALANCE_CREDITS: i64 = 100;

/// What the user asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RefillSettings {
    pub enabled: bool,
    /// Credits the chosen pack adds.
    pub pack_credits: i64,
    /// Credits refilled per calendar month, at most.
    pub monthly_cap: i64,
}

/// This month's refills so far.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RefillMonth {
    /// Credits of refills that succeeded or may still succeed.
    pub credits: i64,
    /// A charge is under way (its outcome unknown yet).
    pub pending: bool,
    /// A refill failed since the settings were last saved: no more tries until the user acts.
    pub failed_since_saved: bool,
}

/// Whether to charge for one more pack now.
pub fn due(settings: RefillSettings, balance: i64, month: RefillMonth) -> bool {
    settings.enabled
        && balance < LOW_BALANCE_CREDITS
        && !month.pending
        && !month.failed_since_saved
        && month.credits.saturating_add(settings.pack_credits) <= settings.monthly_cap
}

/// The Idempotency-Key of the `n`th refill of `user` in `month` (`yyyy-mm`): a retry of the same
/// charge reuses it, the next refill gets another.
pub fn idempotency_key(user: &str, month: &str, n: i64) -> String {
    format!("roost-refill-{user}-{month}-{n}")
}

#[cfg(test)]
mod tests {
    use super::*;

    const ON: RefillSettings = RefillSettings { enabled: true, pack_credits: 1_000, monthly_cap: 2_000 };

    #[test]
    fn a_refill_is_due_when_low_and_within_the_cap_and_nothing_is_pending_or_failed() {
        let month = RefillMonth::default();
        assert!(due(ON, LOW_BALANCE_CREDITS - 1, month));
        assert!(!due(ON, LOW_BALANCE_CREDITS, month), "not low yet");
        assert!(!due(RefillSettings { enabled: false, ..ON }, 0, month));
        assert!(due(ON, 0, RefillMonth { credits: 1_000, ..month }), "the cap allows a second pack");
        assert!(!due(ON, 0, RefillMonth { credits: 1_001, ..month }), "but not past the cap");
        assert!(!due(ON, 0, RefillMonth { pending: true, ..month }));
        assert!(!due(ON, 0, RefillMonth { failed_since_saved: true, ..month }));
        let near = RefillSettings { monthly_cap: i64::MAX - 1, ..ON };
        assert!(!due(near, 0, RefillMonth { credits: i64::MAX - 10, ..month }), "no overflow");
    }

    #[test]
    fn each_refill_has_its_own_key_and_a_retry_the_same() {
        assert_eq!(idempotency_key("u1", "2026-12", 1), idempotency_key("u1", "2026-12", 1));
        assert_ne!(idempotency_key("u1", "2026-12", 1), idempotency_key("u1", "2026-12", 2));
        assert_ne!(idempotency_key("u1", "2026-12", 1), idempotency_key("u2", "2026-12", 1));
    }
}
