//! Where a wrapper can watch or change the simulated agent's handshake. The shipped agent uses
//! [`NoHooks`]; the `fakes` crate uses them to inject the failures a real OpenClaw produces.

use axum::http::HeaderMap;
use serde_json::Value;

/// A refused `connect`: the `res` error payload, then a close frame.
#[derive(Clone, Debug)]
pub struct Refusal {
    pub error: Value,
    pub close_code: u16,
    pub close_reason: String,
}

pub trait Hooks: Send + Sync + 'static {
    /// The headers of every upgrade request, before the agent checks them.
    fn upgrade(&self, _headers: &HeaderMap) {}

    /// Every `req` frame, `connect` included, as (method, params).
    fn request(&self, _method: &str, _params: &Value) {}

    /// A well-formed `connect` on the `index`th accepted connection (from 0), before its
    /// parameters are checked: `Err` refuses it.
    fn admit(&self, _index: u64) -> Result<(), Refusal> {
        Ok(())
    }

    /// Whether `presented` opens the agent whose token is `expected`.
    fn token_accepted(&self, presented: &str, expected: &str) -> bool {
        presented == expected
    }

    /// The scopes `hello-ok` grants for the requested ones.
    fn grant(&self, requested: Vec<String>) -> Vec<String> {
        requested
    }
}

/// The simulated agent as shipped: nothing watched, nothing changed.
pub struct NoHooks;

impl Hooks for NoHooks {}
