//! The failures a real OpenClaw produces at the handshake, injected through the simulated
//! agent's hooks, and the record of what it was sent.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, MutexGuard};

use axum::http::{HeaderMap, header};
use gateway::machines::simulated::{Hooks, Refusal};
use serde_json::{Value, json};

pub(super) struct Faults {
    starting_rejections: u32,
    clear_scopes: bool,
    any_token: bool,
    requests: Mutex<Vec<(String, Value)>>,
    saw_forwarding: AtomicBool,
    saw_origin: AtomicBool,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn is_forwarding_header(name: &str) -> bool {
    name.starts_with("x-forwarded-") || name == "forwarded" || name == "x-real-ip"
}

impl Faults {
    pub(super) fn new(starting_rejections: u32, clear_scopes: bool, any_token: bool) -> Self {
        Self {
            starting_rejections,
            clear_scopes,
            any_token,
            requests: Mutex::new(Vec::new()),
            saw_forwarding: AtomicBool::new(false),
            saw_origin: AtomicBool::new(false),
        }
    }

    pub(super) fn requests(&self) -> Vec<(String, Value)> {
        lock(&self.requests).clone()
    }

    /// True if any upgrade carried X-Forwarded-*, Forwarded or X-Real-IP (answered 403).
    pub(super) fn saw_forwarding_headers(&self) -> bool {
        self.saw_forwarding.load(Ordering::SeqCst)
    }

    /// True if any upgrade carried `Origin` (closed 1008 "origin not allowed" at connect).
    pub(super) fn saw_origin(&self) -> bool {
        self.saw_origin.load(Ordering::SeqCst)
    }
}

impl Hooks for Faults {
    fn upgrade(&self, headers: &HeaderMap) {
        if headers.keys().any(|k| is_forwarding_header(k.as_str())) {
            self.saw_forwarding.store(true, Ordering::SeqCst);
        }
        if headers.contains_key(header::ORIGIN) {
            self.saw_origin.store(true, Ordering::SeqCst);
        }
    }

    fn request(&self, method: &str, params: &Value) {
        lock(&self.requests).push((method.to_string(), params.clone()));
    }

    fn admit(&self, index: u64) -> Result<(), Refusal> {
        if index < u64::from(self.starting_rejections) {
            return Err(Refusal {
                error: json!({"code": "UNAVAILABLE", "message": "gateway starting", "retryable": true,
                              "retryAfterMs": 500}),
                close_code: 1013,
                close_reason: "gateway starting".to_string(),
            });
        }
        Ok(())
    }

    fn token_accepted(&self, presented: &str, expected: &str) -> bool {
        presented == expected || (self.any_token && !presented.is_empty())
    }

    fn grant(&self, requested: Vec<String>) -> Vec<String> {
        if self.clear_scopes { Vec::new() } else { requested }
    }
}
