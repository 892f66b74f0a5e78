//! Scripted failures, and the answers they produce. Bodies are the ones research §3–§4 quotes;
//! where it quotes none, the comment says so and the wording is the fake's own.

use std::collections::{HashMap, VecDeque};

use serde_json::{Value, json};

use super::route::Op;

/// A failure the next matching request gets instead of (or after) its normal handling.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// This status with a body in the API's error shape: 408 is the `/wait` deadline message,
    /// 409 the "insufficient memory" abort, 5xx a plain error (research quotes no 5xx body).
    Status(u16),
    /// 412 "volume is currently bound to machine" (research §4, volume delete).
    VolumeInUse,
    /// 412 "insufficient resources to create new machine with existing volume": the volume's
    /// host (zone) is full (research pitfall 4).
    VolumeHostFull,
    /// 422 with `status: insufficient_capacity` for a region. The research names the code but ties
    /// it to no HTTP status; 422 is what this fake uses, as the brief for it asks.
    Capacity { region: String },
    /// 429, with this `Retry-After` header value if any. Research quotes no 429 body and leaves
    /// the header unverified (§11).
    RateLimited { retry_after: Option<String> },
    /// Accept the request and answer nothing, past any client timeout (until the fake stops).
    Hang,
    /// Do the work, then answer this status instead of the result: a create that succeeded but
    /// whose answer was lost (research pitfall 9: "a 408 can be a silent success").
    LostResponse(u16),
    /// Close the connection without an answer, as a reset does; `after_commit`: only once the
    /// request was carried out (the object exists, the client cannot know).
    Reset { after_commit: bool },
    /// 422 `name_taken` ("Name has already been taken"), the app create's answer when the name
    /// is in use (research §2.1), whether or not it really is.
    NameTaken,
    /// Exactly this status and raw body.
    Raw { status: u16, body: String },
}

/// FIFO queues: per operation first, then one for whatever request comes next.
#[derive(Default)]
pub(super) struct Faults {
    per_op: HashMap<Op, VecDeque<Fault>>,
    next: VecDeque<Fault>,
}

impl Faults {
    pub fn push(&mut self, op: Option<Op>, fault: Fault) {
        match op {
            Some(op) => self.per_op.entry(op).or_default().push_back(fault),
            None => self.next.push_back(fault),
        }
    }

    pub fn take(&mut self, op: Op) -> Option<Fault> {
        self.per_op.get_mut(&op).and_then(VecDeque::pop_front).or_else(|| self.next.pop_front())
    }

    pub fn pending(&self) -> usize {
        self.next.len() + self.per_op.values().map(VecDeque::len).sum::<usize>()
    }
}

/// A response the fake sends: a status, an optional JSON body, an optional `Retry-After`.
#[derive(Debug, Clone)]
pub(super) struct Reply {
    pub status: u16,
    pub body: Option<Value>,
    pub retry_after: Option<String>,
    pub raw: Option<String>,
}

impl Reply {
    pub fn json(status: u16, body: Value) -> Self {
        Self { status, body: Some(body), retry_after: None, raw: None }
    }

    pub fn empty(status: u16) -> Self {
        Self { status, body: None, retry_after: None, raw: None }
    }

    /// The spec's `ErrorResponse`: `{"error": "...", "status": "<code>"}`.
    pub fn error(status: u16, message: impl Into<String>) -> Self {
        Self::json(status, json!({ "error": message.into() }))
    }

    pub fn error_code(status: u16, message: impl Into<String>, code: &str) -> Self {
        Self::json(status, json!({ "error": message.into(), "status": code }))
    }

    pub fn capacity(region: &str) -> Self {
        // The message is the fake's; the code is the spec's `insufficient_capacity`.
        Self::error_code(
            422,
            format!("insufficient resources available to fulfill request in region {region}"),
            "insufficient_capacity",
        )
    }
}

/// The answer a pre-commit fault gives (`Hang` and `LostResponse` are handled by the caller).
pub(super) fn reply_for(fault: &Fault) -> Reply {
    match fault {
        Fault::Status(408) => Reply::error(408, "deadline_exceeded: machine failed to reach desired state"),
        Fault::Status(409) => Reply::error(
            409,
            "aborted: could not reserve resource for machine: insufficient memory available to fulfill request",
        ),
        Fault::Status(412) => Reply::error(412, "failed_precondition: precondition failed"),
        Fault::Status(status) => Reply::error(*status, format!("fake fly: injected {status}")),
        Fault::VolumeInUse => {
            Reply::error(412, "failed_precondition: volume is currently bound to machine: 1857156b526dd8")
        }
        Fault::VolumeHostFull => Reply::error(412, "insufficient resources to create new machine with existing volume"),
        Fault::Capacity { region } => Reply::capacity(region),
        Fault::RateLimited { retry_after } => {
            Reply { retry_after: retry_after.clone(), ..Reply::error(429, "rate limit exceeded") }
        }
        Fault::Raw { status, body } => {
            Reply { status: *status, body: None, retry_after: None, raw: Some(body.clone()) }
        }
        Fault::LostResponse(status) => reply_for(&Fault::Status(*status)),
        Fault::NameTaken => Reply::error_code(422, "Name has already been taken", "name_taken"),
        Fault::Hang | Fault::Reset { .. } => Reply::empty(504),
    }
}
