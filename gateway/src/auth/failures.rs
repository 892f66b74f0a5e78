//! Failures per key in fixed windows. Unlike a rate limiter, checking costs nothing: only a
//! recorded failure counts, so successes never use up anyone's allowance.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Keys kept at most; each costs about 100 bytes. Past this, new failures go uncounted until
/// old windows end (the per-IP attempt limit still applies to them).
const MAX_KEYS: usize = 100_000;

pub struct FailureCounter<K> {
    limit: u32,
    window: Duration,
    failures: Mutex<HashMap<K, Window>>,
}

struct Window {
    started: Instant,
    count: u32,
}

impl<K: Hash + Eq + Clone> FailureCounter<K> {
    pub fn new(limit: u32, window: Duration) -> Self {
        Self { limit: limit.max(1), window, failures: Mutex::new(HashMap::new()) }
    }

    /// How long `key` must wait, when it has used up its failures in the current window.
    pub fn refused_for(&self, key: &K) -> Option<Duration> {
        let failures = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        let window = failures.get(key)?;
        let left = self.window.checked_sub(window.started.elapsed())?;
        (window.count >= self.limit).then_some(left)
    }

    pub fn record(&self, key: &K) {
        let mut failures = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        if failures.len() >= MAX_KEYS && !failures.contains_key(key) {
            failures.retain(|_, w| w.started.elapsed() < self.window);
            if failures.len() >= MAX_KEYS {
                tracing::warn!("too many distinct login failures to count them all");
                return;
            }
        }
        let window = failures.entry(key.clone()).or_insert(Window { started: Instant::now(), count: 0 });
        if window.started.elapsed() >= self.window {
            *window = Window { started: Instant::now(), count: 0 };
        }
        window.count += 1;
    }

    pub fn retain_recent(&self) {
        let mut failures = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        failures.retain(|_, w| w.started.elapsed() < self.window);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_recorded_failures_count_and_each_key_alone() {
        let counter = FailureCounter::new(2, Duration::from_secs(60));
        assert!(counter.refused_for(&"a").is_none());
        counter.record(&"a");
        assert!(counter.refused_for(&"a").is_none());
        counter.record(&"a");
        assert!(counter.refused_for(&"a").is_some_and(|wait| wait <= Duration::from_secs(60)));
        assert!(counter.refused_for(&"b").is_none());
    }

    #[test]
    fn a_window_that_ended_is_forgotten() {
        let counter = FailureCounter::new(1, Duration::ZERO);
        counter.record(&"a");
        assert!(counter.refused_for(&"a").is_none());
        counter.retain_recent();
        assert!(counter.failures.lock().unwrap().is_empty());
    }
}
