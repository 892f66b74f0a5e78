//! Agents another Roost instance runs (it holds the user's lease): this instance shows their
//! stages as that one reports them, relays to them once ready, and asks that instance to stop
//! them. Nothing here starts or stops an agent itself.

use std::time::{Duration, Instant};

use provisioner::Stage;
use provisioner::lease::Taken;

use super::{Machines, StartError, Status};
use crate::db::machines as store;
use crate::domain::UserId;

/// How often the other instance's progress is read from the database while waiting on it.
const POLL: Duration = Duration::from_millis(250);

/// How long a stop by another instance may take beyond the lease's lifetime: its next renewal
/// hears of the request, and a local agent gets a few seconds to exit.
const STOP_GRACE: Duration = Duration::from_secs(10);

impl Machines {
    /// Takes the user's lease (`None`: start the agent here), or follows the instance that holds
    /// it until its agent is ready (its address). If that instance lets go or dies first, the
    /// lease is taken here after all.
    pub(super) async fn lease_or_follow(&self, user: &UserId) -> Result<Option<String>, StartError> {
        let mut shown: Option<(String, String)> = None;
        loop {
            let taken = self.leases.take(user.as_str()).await.map_err(|e| unavailable(user, &e))?;
            if let Taken::Mine { .. } = taken {
                return Ok(None);
            }
            while self.held_elsewhere(user).await? {
                let row = store::find(&self.reporter.db, user).await.map_err(|e| unavailable(user, &e))?;
                if let Some(row) = row {
                    match (row.state.as_str(), row.address) {
                        ("ready", Some(address)) => return Ok(Some(address)),
                        ("failed", _) => return Err(StartError::failed(&row.detail)),
                        _ => {}
                    }
                    let now = (row.stage, row.detail);
                    if shown.as_ref() != Some(&now)
                        && let Some(stage) = Stage::parse(&now.0)
                    {
                        self.reporter.publish(user.as_str(), Status::new(stage, now.1.clone()));
                        shown = Some(now);
                    }
                }
                tokio::time::sleep(POLL).await;
            }
        }
    }

    /// Asks the instance holding the user's lease to stop their agent, and waits until it has:
    /// that lease is gone (let go, lapsed, or taken anew, even by the same instance after a
    /// restart that came in meanwhile). `false`: no other instance runs it.
    pub(super) async fn stop_elsewhere(&self, user: &UserId, reason: &str) -> Result<bool, StartError> {
        let asked = self.leases.request_stop(user.as_str(), reason).await.map_err(|e| stop_failed(user, &e))?;
        let Some(asked) = asked else { return Ok(false) };
        tracing::info!(user_id = %user, reason, holder = asked.name, "asked the instance running the agent to stop it");
        let deadline = Instant::now() + self.leases.ttl() + STOP_GRACE;
        loop {
            let now = self.leases.holder_of(user.as_str()).await.map_err(|e| stop_failed(user, &e))?;
            if now.as_ref() != Some(&asked) {
                break;
            }
            if Instant::now() > deadline {
                return Err(stop_failed(user, &"the instance running the agent did not stop it in time"));
            }
            tokio::time::sleep(POLL).await;
        }
        Ok(true)
    }

    async fn held_elsewhere(&self, user: &UserId) -> Result<bool, StartError> {
        let holder = self.leases.holder_of(user.as_str()).await.map_err(|e| unavailable(user, &e))?;
        Ok(holder.is_some_and(|h| h.name != self.leases.holder()))
    }
}

fn unavailable(user: &UserId, e: &dyn std::fmt::Display) -> StartError {
    StartError::logged(user, "Your agent could not be started.", e)
}

fn stop_failed(user: &UserId, e: &dyn std::fmt::Display) -> StartError {
    StartError::logged(user, "Stopping your agent failed.", e)
}
