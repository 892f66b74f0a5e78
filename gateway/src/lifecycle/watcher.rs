//! Stops agents nobody uses: after the idle timeout, or at once, least recently used first,
//! when someone waits for a slot. An agent is in use while a chat socket is open, a chat run is
//! in progress or a model call is in flight, or while a chat channel runs on it; such an agent is
//! never stopped here.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use super::channels::Live;
use super::describe;
use crate::app::AppState;
use crate::domain::UserId;

pub async fn watch(state: AppState) {
    let policy = state.machines.idle_policy();
    // Often enough for the shortest timeout, the server's or any plan's.
    let catalog = &state.catalog;
    let plan_timeouts = catalog.plans.values().chain([&catalog.free]).filter_map(|p| p.idle_timeout.flatten());
    let shortest = policy.timeout.into_iter().chain(plan_timeouts).min();
    let tick =
        shortest.map_or(Duration::from_secs(30), |t| (t / 4).clamp(Duration::from_secs(1), Duration::from_secs(30)));
    let slots = state.machines.slots().clone();
    // Agents about to stop that did not say whether a channel runs, and how many times in a row.
    // Only agents in this round's idle list stay in it, so it is bounded by the running agents.
    let mut unanswered: HashMap<UserId, u32> = HashMap::new();
    loop {
        // While someone waits, look every second: a chat closing can free a slot for them.
        let wait = if slots.waiting() > 0 { tick.min(Duration::from_secs(1)) } else { tick };
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = slots.someone_waits.notified() => {}
        }
        let mut idle = idle_agents(&state).await;
        idle.sort_by_key(|(_, since)| *since);
        unanswered.retain(|user, _| idle.iter().any(|(u, _)| u == user));
        // Least recently used first: each stop frees a slot for someone in line.
        let mut room_needed = slots.waiting();
        for (user, since) in idle {
            // The user's plan may set its own timeout (`idle_timeout` in --plans).
            let timeout = crate::stripe_sync::idle_timeout_of(&state, &user).await.unwrap_or(policy.timeout);
            let due = timeout.filter(|t| since.elapsed() >= *t);
            if due.is_none() && room_needed == 0 {
                continue;
            }
            // Asked only of agents about to stop: the question costs an RPC. A bot keeps its
            // agent on only while the plan includes bots (a downgraded plan's bot stops with it).
            let live = if crate::stripe_sync::plan_keeps_bots(&state, &user).await {
                super::channels::live_channel(&state, &user).await
            } else {
                Live::No
            };
            match live {
                Live::Yes => {
                    unanswered.remove(&user);
                    state.machines.activity().touch(&user);
                    continue;
                }
                // A busy agent may be answering a bot right now: it is asked again next round,
                // and stopped only once it has not answered several rounds running.
                Live::Unknown => {
                    let times = unanswered.entry(user.clone()).or_default();
                    *times += 1;
                    if *times < UNANSWERED_BEFORE_STOP {
                        continue;
                    }
                }
                Live::No => {}
            }
            unanswered.remove(&user);
            let reason = match due {
                Some(timeout) => format!("stopped after {} idle", describe(timeout)),
                None => "stopped while idle, to make room for someone waiting".to_string(),
            };
            if state.machines.stop_because(&user, &reason).await.is_ok() {
                room_needed = room_needed.saturating_sub(1);
            }
        }
    }
}

/// How many rounds in a row an agent may leave the channel question unanswered before it is
/// stopped anyway (one that never answers must not run for ever).
const UNANSWERED_BEFORE_STOP: u32 = 3;

/// Running agents that are not in use, with when they last were.
async fn idle_agents(state: &AppState) -> Vec<(UserId, Instant)> {
    let machines = &state.machines;
    let mut idle = Vec::new();
    for user in machines.slots().running() {
        if machines.is_starting(&user) {
            continue;
        }
        if !machines.is_up(&user).await {
            // It failed or was stopped outside the watcher (a crash loop, an admin): free its slot.
            machines.release_slot(&user);
            continue;
        }
        let activity = machines.activity();
        if state.relays.socket_count(&user) > 0 || activity.is_busy(&user) {
            activity.touch(&user);
            continue;
        }
        let since = activity.last_active(&user).unwrap_or_else(|| {
            activity.touch(&user);
            Instant::now()
        });
        idle.push((user, since));
    }
    idle
}
