//! The lifecycle's rules, pure and provider-independent: what a stage means for a machine's
//! state, which changes belong in its history, and what reconciling a stored state with what
//! really runs decides. The gateway stores the results (its `machines` and `machine_events`
//! tables) and drives every provider by them.

use crate::{MachineState, Stage};

/// One change of a user's machine, as it is recorded: when, what, and why in plain words.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    /// Unix seconds.
    pub at: i64,
    pub state: MachineState,
    pub stage: Stage,
    pub reason: String,
}

impl Change {
    pub fn new(stage: Stage, reason: impl Into<String>, at: i64) -> Self {
        Self { at, state: stage.state(), stage, reason: reason.into() }
    }

    /// Whether this change belongs in the history after one in `latest` state (`None`: no
    /// history yet). A start is one event however many stages it passes (provisioning is part
    /// of it, and so is a moving place in line); every failure, stop, ready and destroy is one,
    /// even repeated, since each is something that happened.
    pub fn is_event_after(&self, latest: Option<&str>) -> bool {
        let always = matches!(self.stage, Stage::Failed | Stage::Stopped | Stage::Ready | Stage::Destroying);
        always || latest.map(phase) != Some(phase(self.state.as_str()))
    }
}

/// Provisioning (installing, preparing) is part of a start, as far as the user's history goes.
fn phase(state: &str) -> &str {
    if state == MachineState::Provisioning.as_str() { MachineState::Starting.as_str() } else { state }
}

/// States in which a stored row claims an agent is up, or on its way.
pub fn claims_up(state: &str) -> bool {
    ["provisioning", "starting", "ready", "stopping"].contains(&state)
}

/// What a row that claims its agent is up becomes when nothing of the provider runs behind it.
pub const RESTARTED_REASON: &str = "stopped: Roost restarted while it was running";

/// Reconciling a stored state with the provider's: the change to record, if any. A row that
/// says up with nothing behind it becomes stopped; anything else is left as it is (an agent
/// with no row is the provider's to reap).
pub fn reconcile(stored: &str, provider_up: bool, now: i64) -> Option<Change> {
    (claims_up(stored) && !provider_up).then(|| Change::new(Stage::Stopped, RESTARTED_REASON, now))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn events(stages: &[Stage]) -> Vec<&'static str> {
        let mut latest: Option<&'static str> = None;
        let mut kept = Vec::new();
        for &stage in stages {
            let change = Change::new(stage, "", 0);
            if change.is_event_after(latest) {
                kept.push(stage.as_str());
                latest = Some(change.state.as_str());
            }
        }
        kept
    }

    #[test]
    fn a_start_is_one_event_and_each_stop_failure_and_ready_counts() {
        use Stage::*;
        let kept = events(&[Queued, Queued, InstallingRuntime, PreparingState, Starting, WaitingReady, Ready]);
        assert_eq!(kept, ["queued", "ready"]);
        assert_eq!(
            events(&[Ready, Stopped, Stopped, Failed, Failed]),
            ["ready", "stopped", "stopped", "failed", "failed"]
        );
        assert_eq!(events(&[Stopped, Restarting, WaitingReady, Ready]), ["stopped", "restarting", "ready"]);
        assert_eq!(events(&[Destroying, Destroying, Destroyed]), ["destroying", "destroying", "destroyed"]);
    }

    #[test]
    fn reconcile_stops_only_rows_that_claim_an_agent_nothing_runs() {
        for up in ["provisioning", "starting", "ready", "stopping"] {
            let change = reconcile(up, false, 7).expect(up);
            assert_eq!(
                (change.state, change.reason.as_str(), change.at),
                (MachineState::IdleStopped, RESTARTED_REASON, 7)
            );
            assert_eq!(reconcile(up, true, 7), None, "{up} with its agent running");
        }
        for settled in ["idle_stopped", "failed", "destroying", "destroyed"] {
            assert_eq!(reconcile(settled, false, 7), None, "{settled}");
        }
    }

    #[test]
    fn every_stage_parses_back_and_has_a_state() {
        for stage in Stage::ALL {
            assert_eq!(Stage::parse(stage.as_str()), Some(stage));
        }
        assert_eq!(Stage::parse("nonsense"), None);
    }
}
