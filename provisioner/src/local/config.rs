//! The OpenClaw config written before every start. Secrets are not in it: the gateway token and
//! the LLM credential reach the agent through its environment.

use serde_json::{Value, json};

use crate::LlmEndpoint;

pub const LLM_CREDENTIAL_ENV: &str = "ROOST_LLM_CREDENTIAL";
pub const PROVIDER_ID: &str = "roost";

pub fn render(port: u16, llm: &LlmEndpoint) -> Value {
    json!({
        "gateway": { "mode": "local", "bind": "loopback", "port": port, "auth": { "mode": "token" } },
        "update": { "checkOnStart": false },
        "telemetry": { "enabled": false },
        "discovery": { "mdns": { "mode": "off" } },
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
        let text = render(18801, &llm).to_string();
        assert!(!text.contains("rak_secret"));
        assert!(text.contains("${ROOST_LLM_CREDENTIAL}"));
        assert!(text.contains("\"primary\":\"roost/m1\""));
        assert!(text.contains("http://127.0.0.1:8080/llm/openai/v1"));
    }
}
