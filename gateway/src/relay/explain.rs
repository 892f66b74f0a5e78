//! Roost's own reason for a failed chat run, where it knows better than the agent (which only
//! says "request failed"): no model on this server, or the run's model call refused for credits.

use std::sync::Arc;

use super::frames::RunFailure;
use crate::domain::UserId;
use crate::llm::CreditRefusals;

/// What every link needs to explain failures; cheap to clone.
#[derive(Clone)]
pub struct Explain {
    pub model_configured: bool,
    pub refusals: Arc<CreditRefusals>,
}

impl Explain {
    /// Why the user's failed run failed, if Roost knows.
    pub fn failure(&self, user: &UserId) -> Option<RunFailure> {
        if !self.model_configured {
            return Some(RunFailure::NoModel);
        }
        self.refusals.recent(user).map(RunFailure::Refused)
    }
}
