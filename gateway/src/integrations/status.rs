//! Reads a channel's live state out of OpenClaw's `channels.status` answer.
//!
//! What OpenClaw 2026.9.6 reports (research §13): `channels.<id>` = `{configured, running,
//! lastError, tokenSource, mode, …}` and `channelAccounts.<id>[]` = `{accountId, enabled,
//! lifecycle ("ready" | "stopped" | …), connected, running, lastConnectedAt, lastInboundAt,
//! lastOutboundAt, reconnectAttempts, tokenStatus ("available" | "missing"), stateReason
//! ("disabled" | "not configured"), lastError}`; a channel never configured is absent.

use serde_json::{Value, json};

use super::Channel;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    Connected,
    Connecting,
    Disconnected,
    Error,
}

impl State {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Connected => "connected",
            Self::Connecting => "connecting",
            Self::Disconnected => "disconnected",
            Self::Error => "error",
        }
    }
}

#[derive(Debug, Clone)]
pub struct ChannelStatus {
    pub state: State,
    /// A sentence for the page.
    pub detail: String,
    pub last_inbound_at: Option<i64>,
    pub last_outbound_at: Option<i64>,
    pub mode: Option<String>,
}

impl ChannelStatus {
    pub fn json(&self) -> Value {
        json!({
            "state": self.state.as_str(),
            "detail": self.detail,
            "last_inbound_at": self.last_inbound_at,
            "last_outbound_at": self.last_outbound_at,
            "mode": self.mode,
        })
    }
}

/// The default account of `channel` in a `channels.status` payload.
pub fn read(payload: &Value, channel: Channel) -> ChannelStatus {
    let id = channel.as_str();
    let summary = &payload["channels"][id];
    let accounts = payload["channelAccounts"][id].as_array();
    let account = accounts
        .and_then(|a| a.iter().find(|a| a["accountId"] == "default").or_else(|| a.first()))
        .unwrap_or(&Value::Null);
    let error = account["lastError"].as_str().or_else(|| summary["lastError"].as_str()).map(super::scrub);
    let (state, detail) =
        if account["connected"] == true || (account["running"] == true && account["lifecycle"] == "ready") {
            (State::Connected, "The bot is connected and answering.".to_string())
        } else if let Some(error) = error {
            (State::Error, format!("The bot stopped with an error: {error}"))
        } else if account["running"] == true || summary["running"] == true || account["lifecycle"] == "starting" {
            (State::Connecting, "The bot is connecting.".to_string())
        } else if summary.is_null() && account.is_null() || summary["configured"] == false {
            (State::Disconnected, "The agent has no bot configured on this channel.".to_string())
        } else if account["enabled"] == false {
            (State::Disconnected, "The bot is turned off on the agent.".to_string())
        } else {
            let why = account["stateReason"].as_str().map(super::scrub).unwrap_or_else(|| "not running".into());
            (State::Disconnected, format!("The bot is not running ({why})."))
        };
    let at = |k: &str| account[k].as_i64();
    ChannelStatus {
        state,
        detail,
        last_inbound_at: at("lastInboundAt"),
        last_outbound_at: at("lastOutboundAt"),
        mode: summary["mode"].as_str().map(str::to_string),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shapes_a_real_openclaw_reported_map_to_states() {
        let connected = json!({
            "channels": { "telegram": { "configured": true, "running": true, "lastError": null, "mode": "polling" } },
            "channelAccounts": { "telegram": [{ "accountId": "default", "enabled": true, "lifecycle": "ready",
                "connected": true, "running": true, "lastInboundAt": 1700000000000i64, "lastOutboundAt": null,
                "tokenStatus": "available", "lastError": null }] },
        });
        let s = read(&connected, Channel::Telegram);
        assert_eq!(s.state, State::Connected);
        assert_eq!(s.last_inbound_at, Some(1_700_000_000_000));
        assert_eq!(s.mode.as_deref(), Some("polling"));

        let disabled = json!({
            "channels": { "telegram": { "configured": true, "running": false } },
            "channelAccounts": { "telegram": [{ "accountId": "default", "enabled": false, "running": false,
                "lifecycle": "stopped", "stateReason": "disabled" }] },
        });
        assert_eq!(read(&disabled, Channel::Telegram).state, State::Disconnected);
        let removed = json!({ "channels": { "telegram": { "configured": false } },
            "channelAccounts": { "telegram": [{ "tokenStatus": "missing", "stateReason": "not configured" }] } });
        assert_eq!(read(&removed, Channel::Telegram).state, State::Disconnected);
        assert_eq!(read(&json!({ "channels": {} }), Channel::Discord).state, State::Disconnected);

        let failed = json!({ "channels": { "telegram": { "configured": true, "running": false,
            "lastError": "getMe returned 401 for bot123456:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAA" } } });
        let s = read(&failed, Channel::Telegram);
        assert_eq!(s.state, State::Error);
        assert!(s.detail.contains("401") && !s.detail.contains("AAAAAAAA"), "{}", s.detail);

        let starting = json!({ "channelAccounts": { "telegram": [{ "accountId": "default", "enabled": true,
            "running": true, "lifecycle": "starting", "connected": false }] } });
        assert_eq!(read(&starting, Channel::Telegram).state, State::Connecting);
    }
}
