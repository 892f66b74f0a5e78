//! A chat channel (a Telegram or Discord bot) answers for the agent at any hour, so an agent
//! with one running is in use even with no browser open: it is never stopped for idleness, nor to
//! make room. Asked of the agent itself (`channels.status`) only when it would otherwise stop.

use std::time::Duration;

use serde_json::{Value, json};

use crate::app::AppState;
use crate::domain::UserId;

const RPC_TIMEOUT: Duration = Duration::from_secs(5);

/// What the user's agent says about its channels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Live {
    /// A channel runs: the agent is in use.
    Yes,
    /// None runs, or the agent is not up to have one.
    No,
    /// The agent is up but did not say: no answer in time (a busy agent stalls its event loop
    /// for seconds), or it is restarting its gateway. Asking again later tells.
    Unknown,
}

/// Whether the user's agent reports a channel running.
pub async fn live_channel(state: &AppState, user: &UserId) -> Live {
    let Some(address) = state.machines.address_if_ready(user).await else { return Live::No };
    let answer = match state.relays.hub(user, &address).await {
        Ok(hub) => hub.call("channels.status", json!({ "probe": false }), RPC_TIMEOUT).await,
        Err(e) => {
            tracing::debug!(user_id = %user, error = %e, "could not ask the agent about its channels");
            return Live::Unknown;
        }
    };
    match answer {
        Ok(res) if res["ok"] == true => {
            if any_running(&res["payload"]) {
                Live::Yes
            } else {
                Live::No
            }
        }
        Ok(res) if res["error"]["code"] == "UNAVAILABLE" => Live::Unknown,
        Ok(res) => {
            tracing::debug!(user_id = %user, error = %res["error"], "channels.status failed");
            Live::No
        }
        Err(e) => {
            tracing::debug!(user_id = %user, error = %e, "channels.status failed");
            Live::Unknown
        }
    }
}

/// An account that is connected or running, or (older shapes) a channel marked running.
fn any_running(payload: &Value) -> bool {
    let live = |v: &Value| v["connected"] == true || v["running"] == true;
    let accounts = payload["channelAccounts"].as_object().into_iter().flat_map(|m| m.values());
    let in_accounts = accounts.flat_map(|a| a.as_array().into_iter().flatten()).any(live);
    in_accounts || payload["channels"].as_object().is_some_and(|m| m.values().any(|c| c["running"] == true))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn running_channels_are_read_from_the_real_shapes() {
        assert!(!any_running(&json!({"channels": {}, "channelAccounts": {}})), "never configured");
        let disabled = json!({
            "channels": {"telegram": {"configured": true, "running": false}},
            "channelAccounts": {"telegram": [{"enabled": false, "running": false, "lifecycle": "stopped"}]},
        });
        assert!(!any_running(&disabled));
        let connected = json!({
            "channels": {"telegram": {"configured": true, "running": true}},
            "channelAccounts": {"telegram": [{"connected": true, "running": true, "lifecycle": "ready"}]},
        });
        assert!(any_running(&connected));
        assert!(any_running(&json!({"channels": {"discord": {"running": true}}})));
        assert!(!any_running(&json!(null)));
    }
}
