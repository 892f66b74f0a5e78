//! Per-IP and per-email limits on login and signup attempts.

use std::hash::Hash;
use std::net::IpAddr;
use std::num::NonZeroU32;

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

use crate::error::AppError;

pub struct AuthLimiter {
    per_ip: DefaultKeyedRateLimiter<IpAddr>,
    per_email: DefaultKeyedRateLimiter<String>,
}

impl AuthLimiter {
    pub fn new(per_ip_per_minute: u32, per_email_per_minute: u32) -> Self {
        let quota = |n: u32| Quota::per_minute(NonZeroU32::new(n.max(1)).expect("at least 1"));
        Self {
            per_ip: RateLimiter::keyed(quota(per_ip_per_minute)),
            per_email: RateLimiter::keyed(quota(per_email_per_minute)),
        }
    }

    /// Counts one attempt against both keys; 429 with `Retry-After` when either is spent.
    pub fn check(&self, ip: IpAddr, email: &str) -> Result<(), AppError> {
        check_key(&self.per_ip, &ip)?;
        check_key(&self.per_email, &email.to_string())
    }

    /// Forgets keys whose quota has fully refilled, so the maps don't grow without bound.
    pub fn retain_recent(&self) {
        self.per_ip.retain_recent();
        self.per_email.retain_recent();
    }
}

fn check_key<K: Hash + Eq + Clone>(limiter: &DefaultKeyedRateLimiter<K>, key: &K) -> Result<(), AppError> {
    limiter.check_key(key).map_err(|not_until| {
        let wait = not_until.wait_time_from(DefaultClock::default().now());
        AppError::rate_limited(wait.as_secs() + 1)
    })
}
