//! Which failed calls are retried, and how long to wait in between (research §6 item 10, §4, §5).
//!
//! - A transport error before the request was sent (no connection) is always safe to retry.
//! - 429, 5xx, 408 and a transport error after sending are retried on idempotent calls only.
//!   On a create they are ambiguous (the object may exist, research pitfall 9): the client hands
//!   them back, and the provider lists by metadata before creating again.
//! - 400, 401, 403, 404, 409, 412 and 422 are answers about the request, never retried here.
//!   (409 can be a held lease or a transient memory shortage; which one calls for a retry is the
//!   caller's decision, since the same status also means a name conflict.)
//! - 404 is retried only by the calls made right after a create, where it is eventual
//!   consistency (research pitfall 24), through [`classify_after_create`].

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use super::error::{FlyError, TransportKind};

/// Whether repeating a call can do anything a single call would not.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Idempotency {
    /// Reads, deletes, start/stop/suspend, setting secrets to given values.
    Idempotent,
    /// Creates (apps, volumes, forks, machines, IP assignments): a repeat makes a second object.
    Create,
}

/// What to do after a failed attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    GiveUp,
    /// Retry after the backoff, or after this long if the server said so (`Retry-After`).
    Retry {
        at_least: Option<Duration>,
    },
}

/// The default classification (see the module comment).
pub fn classify(error: &FlyError, idempotency: Idempotency) -> Decision {
    let retry = Decision::Retry { at_least: None };
    match error {
        FlyError::Transport { kind: TransportKind::Connect, .. } => retry,
        _ if idempotency == Idempotency::Create => Decision::GiveUp,
        FlyError::Transport { .. } | FlyError::Timeout(_) | FlyError::Server(_) => retry,
        FlyError::RateLimited { retry_after, .. } => Decision::Retry { at_least: *retry_after },
        _ => Decision::GiveUp,
    }
}

/// For reads right after a create: a 404 there means "not visible yet", so it is retried too.
pub fn classify_after_create(error: &FlyError, idempotency: Idempotency) -> Decision {
    match error {
        FlyError::NotFound(_) => Decision::Retry { at_least: None },
        _ => classify(error, idempotency),
    }
}

/// Sleeps between attempts. Replaceable so tests can record the delays instead of waiting.
pub type Sleeper = Arc<dyn Fn(Duration) -> Pin<Box<dyn Future<Output = ()> + Send>> + Send + Sync>;

/// How many attempts a call gets and how they are spaced.
#[derive(Clone)]
pub struct RetryPolicy {
    /// Attempts in all, the first included (1 = never retry).
    pub max_attempts: u32,
    /// The first backoff; each further one doubles, up to `max_delay`.
    pub base_delay: Duration,
    pub max_delay: Duration,
    /// No retry starts once this much time (sleeps included) has been spent on the call. A
    /// `Retry-After` that would pass it ends the call with the 429, so the caller can reschedule.
    pub max_total: Duration,
    pub sleep: Sleeper,
}

impl RetryPolicy {
    /// Four attempts over at most 30 s: enough to ride out a 502 or a burst limit (1 req/s per
    /// action, burst 3, research §5) without holding a user's provisioning for long.
    pub fn standard() -> Self {
        Self {
            max_attempts: 4,
            base_delay: Duration::from_millis(250),
            max_delay: Duration::from_secs(5),
            max_total: Duration::from_secs(30),
            sleep: Arc::new(|d| Box::pin(tokio::time::sleep(d))),
        }
    }

    /// No retries at all.
    pub fn none() -> Self {
        Self { max_attempts: 1, ..Self::standard() }
    }

    /// The pause before retry number `retry` (0 = the first retry): exponential with "equal
    /// jitter" (half fixed, half random), so callers that failed together spread out but never
    /// retry at once; never shorter than what the server asked for.
    pub fn delay(&self, retry: u32, at_least: Option<Duration>) -> Duration {
        let exp = self.base_delay.saturating_mul(1u32.checked_shl(retry.min(16)).unwrap_or(u32::MAX));
        let capped = exp.min(self.max_delay);
        let half = capped / 2;
        let jitter = Duration::from_nanos(fastrand::u64(0..=half.as_nanos().min(u64::MAX as u128) as u64));
        (half + jitter).max(at_least.unwrap_or_default())
    }
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self::standard()
    }
}

impl fmt::Debug for RetryPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RetryPolicy")
            .field("max_attempts", &self.max_attempts)
            .field("base_delay", &self.base_delay)
            .field("max_delay", &self.max_delay)
            .field("max_total", &self.max_total)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fly::error::ApiError;

    fn api(status: u16) -> FlyError {
        let e = ApiError {
            call: "GET /v1/x".into(),
            http_status: status,
            message: "m".into(),
            code: None,
            request_id: None,
        };
        FlyError::from_status(e, (status == 429).then_some(Duration::from_secs(7)))
    }

    fn transport(kind: TransportKind) -> FlyError {
        FlyError::Transport { call: "GET /v1/x".into(), kind, message: "m".into() }
    }

    const RETRY: Decision = Decision::Retry { at_least: None };

    #[test]
    fn idempotent_calls_retry_transient_failures_only() {
        use Idempotency::Idempotent;
        for status in [408, 500, 502, 503, 504] {
            assert_eq!(classify(&api(status), Idempotent), RETRY, "{status}");
        }
        assert_eq!(classify(&api(429), Idempotent), Decision::Retry { at_least: Some(Duration::from_secs(7)) });
        for status in [400, 401, 403, 404, 409, 412, 422] {
            assert_eq!(classify(&api(status), Idempotent), Decision::GiveUp, "{status}");
        }
        for kind in [TransportKind::Connect, TransportKind::Timeout, TransportKind::Other] {
            assert_eq!(classify(&transport(kind), Idempotent), RETRY, "{kind:?}");
        }
    }

    #[test]
    fn creates_retry_only_what_was_never_sent() {
        use Idempotency::Create;
        assert_eq!(classify(&transport(TransportKind::Connect), Create), RETRY);
        for status in [400, 404, 408, 409, 412, 422, 429, 500, 502, 503] {
            assert_eq!(classify(&api(status), Create), Decision::GiveUp, "{status}");
        }
        for kind in [TransportKind::Timeout, TransportKind::Other] {
            assert_eq!(classify(&transport(kind), Create), Decision::GiveUp, "{kind:?}");
        }
    }

    #[test]
    fn only_reads_after_a_create_retry_not_found() {
        assert_eq!(classify(&api(404), Idempotency::Idempotent), Decision::GiveUp);
        assert_eq!(classify_after_create(&api(404), Idempotency::Idempotent), RETRY);
        assert_eq!(classify_after_create(&api(422), Idempotency::Idempotent), Decision::GiveUp);
    }

    #[test]
    fn delays_grow_are_capped_and_honour_the_server() {
        let policy = RetryPolicy {
            base_delay: Duration::from_millis(100),
            max_delay: Duration::from_millis(400),
            ..RetryPolicy::standard()
        };
        for _ in 0..50 {
            let first = policy.delay(0, None);
            assert!(first >= Duration::from_millis(50) && first <= Duration::from_millis(100), "{first:?}");
            let third = policy.delay(2, None);
            assert!(third >= Duration::from_millis(200) && third <= Duration::from_millis(400), "{third:?}");
            assert!(policy.delay(30, None) <= Duration::from_millis(400));
            assert!(policy.delay(0, Some(Duration::from_secs(3))) >= Duration::from_secs(3));
        }
    }
}
