//! The OpenClaw config written before every start: the platform's keys, shared with the Fly
//! image's sidecar (`roost_agent::config`). Secrets are not in it: the gateway token and the LLM
//! credential reach the agent through its environment.

use std::path::Path;

use roost_agent::config::{Model, platform_keys};
use serde_json::Value;

use crate::LlmEndpoint;

pub use roost_agent::config::LLM_CREDENTIAL_ENV;

pub fn render(port: u16, llm: &LlmEndpoint, log_file: &Path) -> Value {
    let model = Model { base_url: &llm.base_url, api: llm.api, model: &llm.model };
    platform_keys(port, &model, Some(log_file))
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
        assert!(text.contains("\"bind\":\"loopback\""));
    }
}
