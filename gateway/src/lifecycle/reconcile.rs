//! At start, the `machines` table meets what really runs: a row that says an agent is up (or on
//! its way) with nothing of this provider behind it becomes stopped, with the reason. (Agents an
//! earlier run left behind, with no row, are reaped by the local provider itself.)

use provisioner::MachineState;

use crate::db::{Db, machines as store};
use crate::machines::Machines;

pub const REASON: &str = "stopped: Roost restarted while it was running";

pub async fn reconcile(machines: &Machines, db: &Db) -> Result<usize, libsql::Error> {
    let mut corrected = 0;
    for user in store::claiming_up(db).await? {
        if !machines.is_up(&user).await {
            store::set_stage(db, &user, MachineState::IdleStopped, "stopped", REASON).await?;
            corrected += 1;
        }
    }
    if corrected > 0 {
        tracing::info!(count = corrected, "marked agents stopped that the database said were running");
    }
    Ok(corrected)
}
