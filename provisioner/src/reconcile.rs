//! The reconciler's rules, pure: what a stored provisioning record calls for, which of a user's
//! machines and volumes are extra, which apps are orphans, whether a machine needs its size
//! changed, how big the next canary batch of an image rollout is, how an idle machine is put
//! down, and when the next round runs. The `fly` provider's driver (`fly/reconcile.rs`,
//! `fly/sweep.rs`, `fly/rollout.rs`) does the I/O these decide.

use std::collections::HashSet;
use std::time::Duration;

/// Fly suspends only machines with at most this much memory (research pitfall 20).
pub const SUSPEND_MAX_MEMORY_MB: u32 = 2048;

/// What one stored record calls for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecordAction {
    /// The provision finished: the record names a machine.
    Settled,
    /// A provision was cut short (a crash, a refused call) and is young enough to finish.
    Resume,
    /// Half-done for longer than the deadline: delete what it made, and tell the user.
    GiveUp,
}

/// A record without a machine id is a provision not finished; past `deadline` since its last
/// write (every id Fly returns is a write) it is stuck.
pub fn judge_record(has_machine: bool, age: Duration, deadline: Duration) -> RecordAction {
    match (has_machine, age > deadline) {
        (true, _) => RecordAction::Settled,
        (false, false) => RecordAction::Resume,
        (false, true) => RecordAction::GiveUp,
    }
}

/// A machine as the sweep sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MachineSeen {
    pub id: String,
    pub state: String,
    /// Its `managed_by` metadata is Roost's.
    pub ours: bool,
}

fn gone(state: &str) -> bool {
    matches!(state, "destroying" | "destroyed")
}

/// The machines of a user's app to delete: every live one of ours but the recorded one (a create
/// that slipped past the lagging list, research §6 item 6). Machines Roost did not make (an
/// operator's) are left alone.
pub fn extra_machines(machines: &[MachineSeen], recorded: &str) -> Vec<String> {
    machines.iter().filter(|m| m.ours && !gone(&m.state) && m.id != recorded).map(|m| m.id.clone()).collect()
}

/// A volume as the sweep sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VolumeSeen {
    pub id: String,
    pub state: String,
    pub attached: bool,
}

/// The volumes of a user's app to delete: unattached ones that are not the recorded one (left by
/// a create whose answer was lost, or by a fork). An attached one waits until its machine is
/// gone (deleting it would be refused with 412 anyway).
pub fn extra_volumes(volumes: &[VolumeSeen], recorded: Option<&str>) -> Vec<String> {
    volumes
        .iter()
        .filter(|v| {
            !v.attached && matches!(v.state.as_str(), "created" | "hydrating") && Some(v.id.as_str()) != recorded
        })
        .map(|v| v.id.clone())
        .collect()
}

/// An app is an orphan when its name has this deployment's prefix, no record names it, and
/// everything on it is Roost's (an app with no machine at all counts: a provision that died
/// after the app was made, whose record is gone). The caller lists apps **before** records, and
/// every provision writes its app name before it creates the app, so an app made meanwhile is
/// never taken for an orphan.
pub fn is_orphan_app(name: &str, prefix: &str, recorded: &HashSet<String>, machines: &[MachineSeen]) -> bool {
    let ours_by_name = name.strip_prefix(prefix).is_some_and(|rest| rest.starts_with('-'));
    ours_by_name && !recorded.contains(name) && machines.iter().all(|m| m.ours)
}

/// Whether a machine's size differs from what is configured now. The change is applied only to
/// a machine that is not running: an update restarts a running machine, and its user would
/// lose their agent mid-chat. A running one is resized after its next idle stop.
pub fn resize_now(current_matches: bool, state: &str) -> bool {
    !current_matches && matches!(state, "stopped" | "suspended" | "created" | "failed")
}

/// How an idle machine is put down.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdleAction {
    Stop,
    /// Resumes in a few hundred ms from its memory snapshot, instead of a cold boot.
    Suspend,
}

/// Suspend where the plan allows it and Fly can (≤ 2 GB of memory); stop otherwise.
pub fn idle_action(suspend_allowed: bool, memory_mb: u32) -> IdleAction {
    if suspend_allowed && memory_mb <= SUSPEND_MAX_MEMORY_MB { IdleAction::Suspend } else { IdleAction::Stop }
}

/// Canary batches: how many machines the next batch of a rollout moves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RolloutPolicy {
    /// The first batch, taken while no machine is on the new image yet.
    pub canary: usize,
    /// No batch is larger.
    pub max_batch: usize,
}

impl Default for RolloutPolicy {
    fn default() -> Self {
        Self { canary: 1, max_batch: 16 }
    }
}

/// The next batch's size: the canary first, then as many as are on the new image already
/// (doubling each round), never more than `max_batch` or than remain.
pub fn batch_size(policy: RolloutPolicy, done: usize, remaining: usize) -> usize {
    let size = if done == 0 { policy.canary } else { done.min(policy.max_batch) };
    size.max(1).min(remaining)
}

/// Rounds run often while there is work in flight (half-done provisions, a rollout, things just
/// swept), and rarely when all is settled. Each delay is spread by ±20% (`jitter` in 0..1), so
/// instances started together do not call Fly in step.
pub fn next_round(busy: bool, calm: Duration, hurried: Duration, jitter: f64) -> Duration {
    let base = if busy { hurried } else { calm };
    base.mul_f64(0.8 + 0.4 * jitter.clamp(0.0, 1.0))
}

/// [`next_round`] with a fresh random jitter.
pub fn next_round_jittered(busy: bool, calm: Duration, hurried: Duration) -> Duration {
    next_round(busy, calm, hurried, fastrand::f64())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(id: &str, state: &str, ours: bool) -> MachineSeen {
        MachineSeen { id: id.into(), state: state.into(), ours }
    }

    #[test]
    fn records_resume_until_their_deadline_then_are_given_up() {
        let deadline = Duration::from_secs(600);
        assert_eq!(judge_record(true, Duration::from_secs(9_999), deadline), RecordAction::Settled);
        assert_eq!(judge_record(false, Duration::from_secs(600), deadline), RecordAction::Resume);
        assert_eq!(judge_record(false, Duration::from_secs(601), deadline), RecordAction::GiveUp);
    }

    #[test]
    fn extra_machines_are_ours_live_and_not_the_recorded_one() {
        let seen =
            [m("a", "started", true), m("b", "stopped", true), m("c", "destroyed", true), m("d", "started", false)];
        assert_eq!(extra_machines(&seen, "a"), ["b"]);
        assert_eq!(extra_machines(&seen, "b"), ["a"]);
        assert!(extra_machines(&[m("a", "started", true)], "a").is_empty());
    }

    #[test]
    fn extra_volumes_are_free_ones_that_are_not_recorded() {
        let v = |id: &str, state: &str, attached| VolumeSeen { id: id.into(), state: state.into(), attached };
        let seen =
            [v("1", "created", true), v("2", "created", false), v("3", "hydrating", false), v("4", "destroyed", false)];
        assert_eq!(extra_volumes(&seen, Some("1")), ["2", "3"]);
        assert_eq!(extra_volumes(&seen, Some("2")), ["3"]);
        assert_eq!(extra_volumes(&seen, None), ["2", "3"]);
    }

    #[test]
    fn orphans_have_the_prefix_no_record_and_nothing_foreign() {
        let recorded: HashSet<String> = ["roost-aaaa".to_string()].into();
        assert!(is_orphan_app("roost-bbbb", "roost", &recorded, &[]));
        assert!(is_orphan_app("roost-bbbb", "roost", &recorded, &[m("x", "started", true)]));
        assert!(!is_orphan_app("roost-aaaa", "roost", &recorded, &[]), "recorded");
        assert!(!is_orphan_app("roostery-b", "roost", &recorded, &[]), "another prefix");
        assert!(!is_orphan_app("other-bbbb", "roost", &recorded, &[]), "not ours by name");
        assert!(!is_orphan_app("roost-bbbb", "roost", &recorded, &[m("x", "started", false)]), "an operator's machine");
    }

    #[test]
    fn sizes_change_only_on_machines_that_are_down() {
        assert!(resize_now(false, "stopped") && resize_now(false, "suspended"));
        assert!(!resize_now(false, "started") && !resize_now(false, "starting"));
        assert!(!resize_now(true, "stopped"));
    }

    #[test]
    fn suspend_only_where_allowed_and_small_enough() {
        assert_eq!(idle_action(true, 2048), IdleAction::Suspend);
        assert_eq!(idle_action(true, 4096), IdleAction::Stop);
        assert_eq!(idle_action(false, 1024), IdleAction::Stop);
    }

    #[test]
    fn canary_batches_start_small_and_double() {
        let p = RolloutPolicy { canary: 1, max_batch: 8 };
        assert_eq!(batch_size(p, 0, 100), 1);
        assert_eq!(batch_size(p, 1, 99), 1);
        assert_eq!(batch_size(p, 2, 98), 2);
        assert_eq!(batch_size(p, 4, 96), 4);
        assert_eq!(batch_size(p, 50, 50), 8);
        assert_eq!(batch_size(p, 50, 3), 3);
        assert_eq!(batch_size(RolloutPolicy { canary: 0, max_batch: 8 }, 0, 5), 1);
    }

    #[test]
    fn rounds_are_quicker_when_busy_and_jittered() {
        let (calm, hurried) = (Duration::from_secs(300), Duration::from_secs(15));
        assert_eq!(next_round(false, calm, hurried, 0.5), calm);
        assert_eq!(next_round(true, calm, hurried, 0.5), hurried);
        assert_eq!(next_round(true, calm, hurried, 0.0), Duration::from_secs(12));
        assert_eq!(next_round(true, calm, hurried, 1.0), Duration::from_secs(18));
        assert_eq!(next_round(true, calm, hurried, 7.0), Duration::from_secs(18), "clamped");
    }
}
