//! The OpenClaw config written before every start. Secrets are not in it: the gateway token and
//! the LLM credential reach the agent through its environment.

use std::path::Path;

use serde_json::{Value, json};

use crate::LlmEndpoint;

pub const LLM_CREDENTIAL_ENV: &str = "ROOST_LLM_CREDENTIAL";
pub const PROVIDER_ID: &str = "roost";

pub fn render(port: u16, llm: &LlmEndpoint, log_file: &Path) -> Value {
    json!({
        // Roost is the only UI; the bundled Control UI would cost ~54 MB per user.
        "gateway": { "mode": "local", "bind": "loopback", "port": port, "auth": { "mode": "token" }, "controlUi": { "enabled": false } },
        "update": { "checkOnStart": false },
        "telemetry": { "enabled": false },
        "discovery": { "mdns": { "mode": "off" } },
        // Otherwise every agent on the host appends to one shared /tmp/openclaw log.
        "logging": { "file": log_file },
        "agents": {
            "defaults": {
                "model": { "primary": format!("{PROVIDER_ID}/{}", llm.model) },
                // Background model calls cost credits the user did not ask to spend.
                "heartbeat": { "every": "0m" },
                "skipBootstrap": true
            }
        },
        "plugins": { "entries": { "memory-core": { "config": { "dreaming": { "enabled": false } } } } },
        "models": {
            "mode": "merge",
            // The agent's only model is Roost's proxy; no remote catalog fetch every six hours.
            "catalogRefresh": { "enabled": false },
            "providers": {
                PROVIDER_ID: {
                    "baseUrl": llm.base_url,
                    "apiKey": format!("${{{LLM_CREDENTIAL_ENV}}}"),
                    "api": llm.api,
                    "models": [{
                        "id": llm.model, "name": llm.model, "reasoning": false, "input": ["text"],
                        "cost": { "input": 0, "output": 0, "cacheRead": 0, "cacheWrite": 0 },
                        "contextWindow": 128000, "maxTokens": 4096
                    }]
                }
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_holds_no_secret_and_points_at_the_proxy() {
        let llm = LlmEndpoint {
            base_url: "http://127.0.0.1:8080/llm/openai/v1".into(),
            api: "openai-completions",
            credential: "rak_secret".into(),
            model: "m1".into(),
        };
        let text = render(18801, &llm, Path::new("/data/users/u/state/logs/openclaw.log")).to_string();
        assert!(!text.contains("rak_secret"));
        assert!(text.contains("${ROOST_LLM_CREDENTIAL}"));
        assert!(text.contains("\"primary\":\"roost/m1\""));
        assert!(text.contains("http://127.0.0.1:8080/llm/openai/v1"));
    }
}
