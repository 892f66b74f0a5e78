//! The `fly` provider's reconciler, run by `serve` (a round every few minutes, sooner while work
//! is unsettled, jittered so instances do not call Fly in step) and once by `roost reconcile`.
//! Every per-user step runs in that user's turn: their lease and their start gate here.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;
use provisioner::fly::{Host, Report, Turn as FlyTurn};
use provisioner::{AgentSpec, Progress};

use crate::app::AppState;
use crate::domain::UserId;
use crate::machines::{Machines, Turn};

/// Between rounds when all is settled, and while something is not (research §6 item 9 sweeps
/// stuck provisions after ~10 min; a round every few minutes finds them in time).
const CALM: Duration = Duration::from_secs(5 * 60);
const HURRIED: Duration = Duration::from_secs(20);

/// Runs rounds until aborted; nothing (and returns at once) unless the provider is `fly`.
pub async fn run(state: AppState) {
    if state.machines.fly().is_none() {
        return;
    }
    // The first round soon after start: a crash may have left provisions half done.
    let mut wait = provisioner::reconcile::next_round_jittered(true, CALM, HURRIED);
    loop {
        tokio::time::sleep(wait).await;
        let report = once(&state.machines).await.unwrap_or_default();
        wait = provisioner::reconcile::next_round_jittered(report.unsettled(), CALM, HURRIED);
    }
}

/// One round (`None`: the provider is not `fly`).
pub async fn once(machines: &Machines) -> Option<Report> {
    let fly = machines.fly()?;
    let host = GatewayHost { machines, turns: Mutex::new(HashMap::new()) };
    let report = fly.reconcile(&host).await;
    if report != Report::default() {
        tracing::info!(?report, "Fly reconciler round");
    }
    Some(report)
}

struct GatewayHost<'a> {
    machines: &'a Machines,
    turns: Mutex<HashMap<String, Turn<'a>>>,
}

#[async_trait]
impl Host for GatewayHost<'_> {
    async fn begin(&self, user_id: &str) -> FlyTurn {
        // Ids in the store were written from parsed ids; one that does not parse is nobody's.
        let Ok(user) = UserId::parse(user_id) else { return FlyTurn::Busy };
        let Some(turn) = self.machines.try_turn(&user).await else { return FlyTurn::Busy };
        let kind = if turn.took_lease { FlyTurn::Free } else { FlyTurn::Here };
        self.turns.lock().expect("turns lock").insert(user_id.to_string(), turn);
        kind
    }

    async fn end(&self, user_id: &str, _turn: FlyTurn) {
        let turn = self.turns.lock().expect("turns lock").remove(user_id);
        if let Some(turn) = turn {
            self.machines.end_turn(turn).await;
        }
    }

    async fn spec(&self, user_id: &str) -> Option<AgentSpec> {
        let user = UserId::parse(user_id).ok()?;
        self.machines.spec_for(&user).await
    }

    fn progress(&self) -> &dyn Progress {
        self.machines.progress()
    }
}
