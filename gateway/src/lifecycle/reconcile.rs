//! At start, the `machines` table meets what really runs. Agents an earlier run left behind are
//! stopped, and a row that says an agent is up (or on its way) with nothing behind it becomes
//! stopped, with the reason. Users whose lease another live instance holds are left alone: their
//! agents are that instance's.

use provisioner::MachineState;

use crate::db::machine_events::{self, MachineEvent};
use crate::db::{Db, leases, machines as store};
use crate::domain::now_secs;
use crate::machines::Machines;

pub const REASON: &str = "stopped: Roost restarted while it was running";

pub async fn reconcile(machines: &Machines, db: &Db) -> Result<usize, libsql::Error> {
    let holder = machines.leases().holder();
    let elsewhere: Vec<String> = leases::held_elsewhere(db, holder).await?.iter().map(|u| u.to_string()).collect();
    machines.reap_leftovers(&elsewhere).await;
    let mut corrected = 0;
    for user in store::claiming_up(db, holder).await? {
        if !machines.is_up(&user).await {
            store::set_stage(db, &user, MachineState::IdleStopped, "stopped", REASON).await?;
            let event = MachineEvent {
                at: now_secs(),
                state: MachineState::IdleStopped.as_str().into(),
                stage: "stopped".into(),
                reason: REASON.into(),
            };
            machine_events::append(db, &user, &event, |_| true).await?;
            corrected += 1;
        }
    }
    if corrected > 0 {
        tracing::info!(count = corrected, "marked agents stopped that the database said were running");
    }
    Ok(corrected)
}
