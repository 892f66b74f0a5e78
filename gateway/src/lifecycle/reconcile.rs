//! At start, the `machines` table meets what really runs. Agents an earlier run left behind are
//! stopped, and a row that says an agent is up (or on its way) with nothing behind it becomes
//! stopped, with the reason. Users whose lease another live instance holds are left alone: their
//! agents are that instance's.

use provisioner::lifecycle;

use crate::db::machine_events::{self, MachineEvent};
use crate::db::{Db, leases, machines as store};
use crate::domain::now_secs;
use crate::machines::Machines;

pub async fn reconcile(machines: &Machines, db: &Db) -> Result<usize, libsql::Error> {
    let holder = machines.leases().holder();
    let grace = machines.leases().ttl();
    let elsewhere: Vec<String> =
        leases::held_elsewhere(db, holder, grace).await?.iter().map(|u| u.to_string()).collect();
    machines.reap_leftovers(&elsewhere).await;
    let mut corrected = 0;
    for (user, stored) in store::claiming_up(db, holder).await? {
        if elsewhere.iter().any(|u| u == user.as_str()) {
            continue;
        }
        let Some(change) = lifecycle::reconcile(&stored, machines.is_up(&user).await, now_secs()) else { continue };
        store::set_stage(db, &user, change.state, change.stage.as_str(), &change.reason).await?;
        let event = MachineEvent {
            at: change.at,
            state: change.state.as_str().into(),
            stage: change.stage.as_str().into(),
            reason: change.reason,
        };
        machine_events::append(db, &user, &event, |_| true).await?;
        corrected += 1;
    }
    if corrected > 0 {
        tracing::info!(count = corrected, "marked agents stopped that the database said were running");
    }
    Ok(corrected)
}
