//! Keeps this instance's lifecycle leases: renews them every third of their life, carries out
//! the stops other instances ask for, takes their users' activity into account, and tells them
//! about activity here on agents they run. An agent whose lease was lost (taken over after this
//! instance stalled, or unrenewable for a whole lease life) is stopped here at once, so a user
//! never has two.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::app::AppState;
use crate::domain::UserId;

const TAKEN_OVER: &str = "stopped: another Roost server took over your agent";
const OUT_OF_TOUCH: &str = "stopped: this Roost server lost touch with its database";

pub async fn keep(state: AppState) {
    let leases = state.machines.leases();
    let mut tick = tokio::time::interval(leases.ttl() / 3);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let stopping: Arc<Mutex<HashSet<UserId>>> = Arc::default();
    let mut last_renewed = Instant::now();
    loop {
        tick.tick().await;
        match leases.renew().await {
            Ok(round) => {
                last_renewed = Instant::now();
                for user in round.lost.iter().filter_map(|u| UserId::parse(u).ok()) {
                    tracing::warn!(user_id = %user, "lost the lease on a running agent; stopping it");
                    stop(&state, &stopping, user, TAKEN_OVER.into(), false);
                }
                for renewed in round.renewed {
                    let Ok(user) = UserId::parse(&renewed.user_id) else { continue };
                    if let Some(at) = renewed.active_elsewhere_at_ms.and_then(instant_of) {
                        state.machines.activity().touch_at(&user, at);
                    }
                    if let Some(request) = renewed.stop_request {
                        stop(&state, &stopping, user, request.reason, true);
                    }
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "renewing agent leases failed");
                if last_renewed.elapsed() >= leases.ttl() {
                    // They have lapsed: another instance may be starting these users' agents.
                    for user in state.machines.slots().running() {
                        stop(&state, &stopping, user, OUT_OF_TOUCH.into(), false);
                    }
                }
            }
        }
        let active_here = active_users(&state);
        if let Err(e) = leases.mark_active(&active_here).await {
            tracing::warn!(error = %e, "recording activity for other instances failed");
        }
    }
}

/// Users in use here whose agents another instance runs.
fn active_users(state: &AppState) -> Vec<String> {
    let mut users: HashSet<UserId> = state.relays.users_with_sockets().into_iter().collect();
    users.extend(state.machines.activity().busy_users());
    let leases = state.machines.leases();
    users.into_iter().map(|u| u.to_string()).filter(|u| !leases.holds(u)).collect()
}

/// One stop per user at a time: a request is seen again on every renewal until it is done.
/// `asked`: another instance asked, as the holder; otherwise the lease is gone already.
fn stop(state: &AppState, stopping: &Arc<Mutex<HashSet<UserId>>>, user: UserId, reason: String, asked: bool) {
    if !stopping.lock().expect("stopping lock").insert(user.clone()) {
        return;
    }
    let state = state.clone();
    let stopping = stopping.clone();
    tokio::spawn(async move {
        if reason == crate::machines::STOPPED_BY_YOU {
            // The user's pages open on this instance wait for their Restart, as on the other.
            state.relays.agent_stopped(&user);
        }
        let result = match asked {
            true => state.machines.stop_because(&user, &reason).await,
            false => state.machines.stop_unleased(&user, &reason).await,
        };
        if let Err(e) = result {
            tracing::warn!(user_id = %user, error = %e, "stopping an agent failed");
        }
        stopping.lock().expect("stopping lock").remove(&user);
    });
}

fn instant_of(at_ms: i64) -> Option<Instant> {
    let now_ms = SystemTime::now().duration_since(UNIX_EPOCH).ok()?.as_millis() as i64;
    Instant::now().checked_sub(Duration::from_millis(now_ms.saturating_sub(at_ms).max(0) as u64))
}
