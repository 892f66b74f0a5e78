//! Keyed rate limits: login and signup per IP and per email, failed token checks per IP, and
//! model calls per user.

use std::hash::Hash;
use std::net::IpAddr;
use std::num::NonZeroU32;

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

use crate::error::AppError;

pub struct KeyedLimiter<K: Hash + Eq + Clone>(DefaultKeyedRateLimiter<K>);

impl<K: Hash + Eq + Clone> KeyedLimiter<K> {
    pub fn per_minute(n: u32) -> Self {
        Self(RateLimiter::keyed(Quota::per_minute(NonZeroU32::new(n.max(1)).expect("at least 1"))))
    }

    /// Counts one event for `key`; 429 with `Retry-After` once its quota is spent.
    pub fn check(&self, key: &K) -> Result<(), AppError> {
        self.0.check_key(key).map_err(|not_until| {
            let wait = not_until.wait_time_from(DefaultClock::default().now());
            AppError::rate_limited(wait.as_secs() + 1)
        })
    }

    /// Forgets keys whose quota has fully refilled, so the map doesn't grow without bound.
    pub fn retain_recent(&self) {
        self.0.retain_recent();
    }
}

pub struct AuthLimiter {
    per_ip: KeyedLimiter<IpAddr>,
    per_email: KeyedLimiter<String>,
    /// Failed API-token checks; successful ones are not counted.
    token_failures_per_ip: KeyedLimiter<IpAddr>,
}

impl AuthLimiter {
    pub fn new(per_ip_per_minute: u32, per_email_per_minute: u32) -> Self {
        Self {
            per_ip: KeyedLimiter::per_minute(per_ip_per_minute),
            per_email: KeyedLimiter::per_minute(per_email_per_minute),
            token_failures_per_ip: KeyedLimiter::per_minute(per_ip_per_minute),
        }
    }

    /// Counts one login or signup attempt against both keys.
    pub fn check(&self, ip: IpAddr, email: &str) -> Result<(), AppError> {
        self.per_ip.check(&ip)?;
        self.per_email.check(&email.to_string())
    }

    pub fn token_failure(&self, ip: IpAddr) -> Result<(), AppError> {
        self.token_failures_per_ip.check(&ip)
    }

    pub fn retain_recent(&self) {
        self.per_ip.retain_recent();
        self.per_email.retain_recent();
        self.token_failures_per_ip.retain_recent();
    }
}
