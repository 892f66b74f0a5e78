//! Keyed rate limits: login and signup per IP, failed logins per (email, IP), failed token
//! checks per IP, and model calls per user.

use std::hash::Hash;
use std::net::IpAddr;
use std::num::NonZeroU32;

use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

use super::failures::FailureCounter;
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
    /// Failed logins per (email, IP): the owner, from their own address, is never locked out
    /// by someone else's guesses, and a guesser is stopped after a few.
    login_failures: FailureCounter<(String, IpAddr)>,
    /// Failed API-token checks; successful ones are not counted.
    token_failures_per_ip: KeyedLimiter<IpAddr>,
}

impl AuthLimiter {
    pub fn new(per_ip_per_minute: u32, failures_per_email_per_minute: u32) -> Self {
        Self {
            per_ip: KeyedLimiter::per_minute(per_ip_per_minute),
            login_failures: FailureCounter::new(failures_per_email_per_minute, Duration::from_secs(60)),
            token_failures_per_ip: KeyedLimiter::per_minute(per_ip_per_minute),
        }
    }

    /// Counts one login or signup attempt from `ip`.
    pub fn attempt(&self, ip: IpAddr) -> Result<(), AppError> {
        self.per_ip.check(&ip)
    }

    /// Refuses a login for `email` from `ip` after too many recent failures, before any password check.
    pub fn login_allowed(&self, ip: IpAddr, email: &str) -> Result<(), AppError> {
        match self.login_failures.refused_for(&(email.to_owned(), ip)) {
            Some(wait) => Err(AppError::rate_limited(wait.as_secs() + 1)),
            None => Ok(()),
        }
    }

    pub fn login_failed(&self, ip: IpAddr, email: &str) {
        self.login_failures.record(&(email.to_owned(), ip));
    }

    pub fn token_failure(&self, ip: IpAddr) -> Result<(), AppError> {
        self.token_failures_per_ip.check(&ip)
    }

    pub fn retain_recent(&self) {
        self.per_ip.retain_recent();
        self.login_failures.retain_recent();
        self.token_failures_per_ip.retain_recent();
    }
}
