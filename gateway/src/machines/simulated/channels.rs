//! `channels.status`, in the shape OpenClaw answers it (research: openclaw-protocol §13): the
//! channels a test has switched on are configured and running, with one connected account.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};

use serde_json::{Map, Value, json};

use super::now_ms;
use super::requests::ConnCtx;

/// The chat channels (`telegram`, `discord`) connected on a user's agent, kept by the provider
/// across stops as a real agent keeps its config; and whether `channels.status` answers at all.
#[derive(Clone, Default, Debug)]
pub struct Channels(Arc<Mutex<ChannelState>>);

#[derive(Default, Debug)]
struct ChannelState {
    connected: BTreeSet<String>,
    /// Answers `UNAVAILABLE`, as OpenClaw does while it restarts its gateway.
    unavailable: bool,
}

impl Channels {
    pub fn set(&self, channel: &str, connected: bool) {
        let mut state = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if connected {
            state.connected.insert(channel.to_string());
        } else {
            state.connected.remove(channel);
        }
    }

    pub fn set_unavailable(&self, unavailable: bool) {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).unavailable = unavailable;
    }

    fn connected(&self) -> Option<Vec<String>> {
        let state = self.0.lock().unwrap_or_else(|e| e.into_inner());
        (!state.unavailable).then(|| state.connected.iter().cloned().collect())
    }
}

pub(super) fn channels_status(ctx: &ConnCtx, id: &Value) {
    let Some(connected) = ctx.shared.channels.connected() else {
        ctx.res_err(
            id,
            json!({"code": "UNAVAILABLE", "message": "channels.status unavailable during gateway restart"}),
        );
        return;
    };
    let mut channels = Map::new();
    let mut accounts = Map::new();
    for name in &connected {
        channels.insert(
            name.clone(),
            json!({"configured": true, "running": true, "lastError": null, "tokenSource": "config", "mode": "polling"}),
        );
        accounts.insert(
            name.clone(),
            json!([{
                "accountId": "default", "enabled": true, "lifecycle": "ready", "connected": true,
                "running": true, "lastConnectedAt": ctx.shared.started_at_ms, "lastInboundAt": null,
                "lastOutboundAt": null, "reconnectAttempts": 0, "tokenStatus": "available", "lastError": null,
            }]),
        );
    }
    ctx.res_ok(
        id,
        json!({
            "ts": now_ms(), "channelOrder": connected, "channelLabels": {}, "channels": channels,
            "channelAccounts": accounts, "channelDefaultAccountId": {}, "statusIssues": [],
        }),
    );
}
