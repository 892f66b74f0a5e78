//! The OpenClaw config written before every start: the platform's keys, shared with the Fly
//! image's sidecar (`roost_agent::config`). Secrets are not in it: the gateway token and the LLM
//! credential reach the agent through its environment.

use std::path::{Path, PathBuf};

use roost_agent::config::{Model, platform_keys};
use roost_agent::secret_files;
use serde_json::{Value, json};

use crate::{LlmEndpoint, ProvisionError};

pub use roost_agent::config::LLM_CREDENTIAL_ENV;

/// `plugins` are directories OpenClaw loads plugins from (the runtime's Discord plugin), the
/// same key the sidecar writes for the image's.
pub fn render(port: u16, llm: &LlmEndpoint, log_file: &Path, plugins: &[PathBuf]) -> Value {
    let model = Model { base_url: &llm.base_url, api: llm.api, model: &llm.model };
    let mut keys = platform_keys(port, &model, Some(log_file));
    if !plugins.is_empty() {
        keys["plugins"]["load"] = json!({ "paths": plugins });
    }
    keys
}

/// Where secret files for the agent live: inside its state dir, which only it (and Roost) may
/// read under the sandbox.
pub fn secrets_dir(user_dir: &Path) -> PathBuf {
    secret_files::dir(&user_dir.join("state"))
}

pub fn secret_file_name(name: &str) -> Result<&str, ProvisionError> {
    secret_files::check_name(name).map_err(ProvisionError::Start)
}

pub use secret_files::write as write_secret;

/// The config for the next start: the user's own keys from `previous` (what they changed in the
/// agent console) with the platform's laid over them, as the Fly sidecar does; channels only as
/// [`carry_over`] keeps them.
pub fn next_config(previous: Option<Value>, platform: Value) -> Value {
    let Some(previous) = previous else { return platform };
    let mut users = previous.clone();
    if let Some(keys) = users.as_object_mut() {
        keys.remove("channels");
        keys.remove("secrets");
    }
    for channel in ["telegram", "discord"] {
        if let Some(entries) = users["plugins"]["entries"].as_object_mut() {
            entries.remove(channel);
        }
    }
    let mut next = roost_agent::config::merge(users, &platform);
    carry_over(&previous, &mut next);
    next
}

/// The parts of the agent's previous config that Roost patched in at runtime and that must
/// survive the rewrite before each start: channels (and the secret providers their tokens are
/// read through), each kept only while its token file still exists.
pub fn carry_over(previous: &Value, next: &mut Value) {
    let file_exists = |p: &Value| p.as_str().is_some_and(|p| Path::new(p).is_file());
    let mut channels = serde_json::Map::new();
    for (name, channel) in previous["channels"].as_object().into_iter().flatten() {
        let keep = match name.as_str() {
            "telegram" => file_exists(&channel["tokenFile"]),
            "discord" => {
                let provider = channel["token"]["provider"].as_str().unwrap_or_default();
                file_exists(&previous["secrets"]["providers"][provider]["path"])
            }
            _ => false,
        };
        if keep {
            channels.insert(name.clone(), channel.clone());
            if let Some(entry) = previous["plugins"]["entries"].get(name.as_str()) {
                next["plugins"]["entries"][name.as_str()] = entry.clone();
            }
        }
    }
    if channels.is_empty() {
        return;
    }
    if let Some(providers) = previous["secrets"]["providers"].as_object() {
        next["secrets"] = json!({ "providers": providers });
    }
    next["channels"] = Value::Object(channels);
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
        let plugin = PathBuf::from("/rt/node_modules/@openclaw/discord");
        let config = render(18801, &llm, Path::new("/data/users/u/state/logs/openclaw.log"), &[plugin]);
        assert_eq!(config["plugins"]["load"]["paths"], json!(["/rt/node_modules/@openclaw/discord"]));
        assert!(config["plugins"]["entries"]["memory-core"].is_object(), "the platform's entries stay");
        let text = config.to_string();
        assert!(!text.contains("rak_secret"));
        assert!(text.contains("${ROOST_LLM_CREDENTIAL}"));
        assert!(text.contains("\"primary\":\"roost/m1\""));
        assert!(text.contains("http://127.0.0.1:8080/llm/openai/v1"));
        assert!(text.contains("\"bind\":\"loopback\""));
    }

    #[test]
    fn channels_survive_a_restart_only_while_their_token_file_exists() {
        let dir = tempfile::tempdir().unwrap();
        let token = dir.path().join("telegram-1.token");
        write_secret(&token, Some(b"1:x")).unwrap();
        let previous = json!({
            "channels": {
                "telegram": { "enabled": true, "tokenFile": token },
                "discord": { "enabled": true, "token": { "source": "file", "provider": "roost-discord", "id": "value" } },
                "slack": { "enabled": true },
            },
            "secrets": { "providers": { "roost-discord": { "source": "file", "path": dir.path().join("gone"), "mode": "singleValue" } } },
            "plugins": { "entries": { "telegram": { "enabled": true } } },
        });
        let mut next = json!({ "plugins": { "entries": {} } });
        carry_over(&previous, &mut next);
        assert_eq!(next["channels"]["telegram"]["tokenFile"], json!(token));
        assert!(next["channels"].get("discord").is_none() && next["channels"].get("slack").is_none());
        assert_eq!(next["plugins"]["entries"]["telegram"]["enabled"], true);
        write_secret(&token, None).unwrap();
        let mut next = json!({ "plugins": { "entries": {} } });
        carry_over(&previous, &mut next);
        assert!(next.get("channels").is_none(), "{next}");
    }

    #[test]
    fn the_users_own_keys_survive_a_restart_and_the_platforms_are_written_again() {
        let llm = LlmEndpoint {
            base_url: "http://proxy/v1".into(),
            api: "openai-completions",
            credential: "c".into(),
            model: "m1".into(),
        };
        let platform = render(18801, &llm, Path::new("/l/openclaw.log"), &[]);
        let previous = json!({
            "agents": { "entries": { "main": { "identity": { "name": "Pip" } } }, "defaults": { "model": { "primary": "x/y" } } },
            "gateway": { "controlUi": { "basePath": "/elsewhere" }, "bind": "lan" },
            "channels": { "slack": { "enabled": true } },
            "plugins": { "entries": { "telegram": { "enabled": true } } },
        });
        let next = next_config(Some(previous), platform.clone());
        assert_eq!(next["agents"]["entries"]["main"]["identity"]["name"], "Pip");
        assert_eq!(next["agents"]["defaults"]["model"], json!({ "primary": "roost/m1" }));
        assert_eq!(next["gateway"]["controlUi"]["basePath"], "/agent");
        assert_eq!(next["gateway"]["bind"], "loopback");
        assert!(next.get("channels").is_none() && next["plugins"]["entries"].get("telegram").is_none());
        assert_eq!(next_config(None, platform.clone()), platform);
    }

    #[test]
    fn secret_files_are_private_and_names_are_checked() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = secrets_dir(dir.path()).join("telegram-ab.token");
        write_secret(&path, Some(b"t")).unwrap();
        assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        assert!(
            secret_file_name("../x").is_err() && secret_file_name(".x").is_err() && secret_file_name("a/b").is_err()
        );
        assert!(secret_file_name("telegram-ab12.token").is_ok());
    }
}
