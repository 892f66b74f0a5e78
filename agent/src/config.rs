//! The OpenClaw config keys the platform owns, and how they meet the file OpenClaw keeps.
//!
//! Pure (serde_json only): the local provider writes the same keys for the agents it runs, and
//! `roost-agent` merges them into the volume's `openclaw.json` on every boot. Secrets are never
//! in the file: the gateway token reaches OpenClaw as `OPENCLAW_GATEWAY_TOKEN`, the LLM
//! credential as `${ROOST_LLM_CREDENTIAL}`, substituted by OpenClaw from its environment.

use std::path::Path;

use serde_json::{Map, Value, json};

pub const LLM_CREDENTIAL_ENV: &str = "ROOST_LLM_CREDENTIAL";
/// Where OpenClaw reads an older release's plugin install records, under its state dir; it
/// imports them into its state database at start (and renames the file `….migrated`).
pub const PLUGIN_INSTALLS_FILE: &str = "plugins/installs.json";
/// The Discord plugin's package name and id.
pub const DISCORD_PLUGIN: &str = "@openclaw/discord";
/// The model provider Roost's LLM proxy appears as: models are `roost/<model>`.
pub const PROVIDER_ID: &str = "roost";

/// Where the agent's model calls go: Roost's LLM proxy.
#[derive(Debug, Clone, Copy)]
pub struct Model<'a> {
    pub base_url: &'a str,
    /// OpenClaw's `api` (e.g. `openai-completions`, `anthropic-messages`).
    pub api: &'a str,
    pub model: &'a str,
}

/// Where Roost serves the agent's own Control UI (`/agent/` on Roost's origin, proxied).
pub const CONTROL_UI_BASE_PATH: &str = "/agent";

/// Config paths the platform owns, with why, in words a user reads when a change is refused:
/// Roost refuses `config.patch`/`config.set`/`config.apply` frames from the Control UI that would
/// change them. [`merge`] writes the gateway and model keys again on every start; the channels
/// are written by Roost's integrations (connect and disconnect), which own their tokens.
pub const PLATFORM_OWNED: &[(&[&str], &str)] = &[
    (&["gateway", "auth"], "Roost reaches your agent with it; changing it would lock Roost out"),
    (&["gateway", "bind"], "your agent listens only where Roost reaches it"),
    (&["gateway", "port"], "your agent listens only where Roost reaches it"),
    (&["gateway", "mode"], "your agent listens only where Roost reaches it"),
    (&["gateway", "tls"], "Roost reaches your agent on its private connection"),
    (&["gateway", "trustedProxies"], "Roost reaches your agent as a local client, not through a proxy"),
    (&["gateway", "controlUi", "enabled"], "Roost serves this console at /agent/"),
    (&["gateway", "controlUi", "basePath"], "Roost serves this console at /agent/"),
    (
        &["models", "providers", PROVIDER_ID],
        "your agent's model calls go through Roost's LLM proxy, which bills your credits",
    ),
    (
        &["agents", "defaults", "model"],
        "your agent's model calls go through Roost's LLM proxy, which bills your credits",
    ),
    (&["channels", "telegram"], "connect or disconnect Telegram on Roost's Integrations page"),
    (&["channels", "discord"], "connect or disconnect Discord on Roost's Integrations page"),
];

/// Subtrees the platform replaces whole rather than merges into: a user key left inside them
/// (a `gateway.auth.token` of their own, another `apiKey`) would change who gets in or who pays.
const OWNED: &[&[&str]] =
    &[&["gateway", "auth"], &["models", "providers", PROVIDER_ID], &["agents", "defaults", "model"]];
/// Keys the platform removes: TLS on loopback would break the sidecar's plain-HTTP forwarding,
/// and trusted proxies would let a forwarded header make a remote client look local.
const REMOVED: &[&[&str]] = &[&["gateway", "tls"], &["gateway", "trustedProxies"]];

/// The platform-owned keys: gateway on loopback with token auth, Roost's proxy as the only model
/// provider, background model calls off. Channels are not here: Roost adds them with
/// `config.patch` when the user connects one, and [`merge`] keeps them.
pub fn platform_keys(port: u16, model: &Model, log_file: Option<&Path>) -> Value {
    let mut keys = json!({
        // The Control UI is the user's agent console, proxied by Roost at the same path.
        "gateway": {
            "mode": "local", "bind": "loopback", "port": port, "auth": { "mode": "token" },
            "controlUi": { "enabled": true, "basePath": CONTROL_UI_BASE_PATH }
        },
        "update": { "checkOnStart": false },
        "telemetry": { "enabled": false },
        "discovery": { "mdns": { "mode": "off" } },
        "agents": {
            "defaults": {
                "model": { "primary": format!("{PROVIDER_ID}/{}", model.model) },
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
                    "baseUrl": model.base_url,
                    "apiKey": format!("${{{LLM_CREDENTIAL_ENV}}}"),
                    "api": model.api,
                    "models": [{
                        "id": model.model, "name": model.model, "reasoning": false, "input": ["text"],
                        "cost": { "input": 0, "output": 0, "cacheRead": 0, "cacheWrite": 0 },
                        "contextWindow": 128000, "maxTokens": 4096
                    }]
                }
            }
        }
    });
    if let Some(file) = log_file {
        // Otherwise every agent on a host appends to one shared /tmp/openclaw log.
        keys["logging"] = json!({ "file": file });
    }
    keys
}

/// The install record that makes OpenClaw trust the Discord plugin at `plugin_dir` (version
/// `version`), in the form it imports from [`PLUGIN_INSTALLS_FILE`]. OpenClaw runs external
/// plugins' storage only for official npm installs it has a record of; one found through
/// `plugins.load.paths` alone fails to register ("only available for trusted plugins"). The
/// plugin is installed with the runtime (pinned, from npm), not per agent with `openclaw plugins
/// install`, which would download it again into every agent's state dir.
pub fn discord_install_record(plugin_dir: &Path, version: &str) -> Value {
    let spec = format!("{DISCORD_PLUGIN}@{version}");
    json!({ "installRecords": { "discord": {
        "source": "npm", "spec": spec, "installPath": plugin_dir, "version": version,
        "resolvedName": DISCORD_PLUGIN, "resolvedVersion": version, "resolvedSpec": spec,
    } } })
}

/// Writes [`discord_install_record`] for the agent whose state dir is `state_dir`, with the
/// version the plugin's `package.json` names, unless OpenClaw has imported one already. Blocking.
pub fn write_discord_install_record(state_dir: &Path, plugin_dir: &Path) -> std::io::Result<()> {
    let file = state_dir.join(PLUGIN_INSTALLS_FILE);
    if file.with_extension("json.migrated").exists() {
        return Ok(());
    }
    let package: Value = serde_json::from_slice(&std::fs::read(plugin_dir.join("package.json"))?)
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))?;
    let version = package["version"]
        .as_str()
        .filter(|v| package["name"] == DISCORD_PLUGIN && !v.is_empty())
        .ok_or_else(|| std::io::Error::new(std::io::ErrorKind::InvalidData, "not the Discord plugin's package.json"))?;
    std::fs::create_dir_all(file.parent().expect("the file is in plugins/"))?;
    let text =
        serde_json::to_vec_pretty(&discord_install_record(plugin_dir, version)).expect("a JSON value serialises");
    let temp = file.with_extension("json.roost-tmp");
    std::fs::write(&temp, text)?;
    std::fs::rename(&temp, &file)
}

/// Drops the channels Roost added whose token file is gone (Roost deletes it on disconnect, also
/// while the agent is down), with their secret provider and plugin entry; any other channel
/// goes too, since Roost connects only these. Run on every rewrite before a start, so a
/// disconnect sticks even when the agent could not be told at the time.
pub fn prune_channels(config: &mut Value) {
    let file_exists = |p: &Value| p.as_str().is_some_and(|p| Path::new(p).is_file());
    let Some(channels) = config.get("channels").and_then(Value::as_object).cloned() else { return };
    let mut kept = Map::new();
    for (name, channel) in channels {
        let keep = match name.as_str() {
            "telegram" => file_exists(&channel["tokenFile"]),
            "discord" => {
                let provider = channel["token"]["provider"].as_str().unwrap_or_default();
                file_exists(&config["secrets"]["providers"][provider]["path"])
            }
            _ => false,
        };
        if keep {
            kept.insert(name, channel);
        } else if let Some(entries) = config.pointer_mut("/plugins/entries").and_then(Value::as_object_mut) {
            entries.remove(&name);
            if name == "discord"
                && let Some(providers) = config.pointer_mut("/secrets/providers").and_then(Value::as_object_mut)
            {
                providers.remove("roost-discord");
            }
        }
    }
    if kept.is_empty() {
        if let Some(object) = config.as_object_mut() {
            object.remove("channels");
        }
    } else {
        config["channels"] = Value::Object(kept);
    }
}

/// `existing` (what OpenClaw last wrote, user keys included) with the platform keys laid over it:
/// objects merge key by key, anything else the platform sets wins, owned subtrees are replaced
/// whole. A file that is not a JSON object counts as empty.
pub fn merge(existing: Value, platform: &Value) -> Value {
    let mut merged = if existing.is_object() { existing } else { Value::Object(Map::new()) };
    for path in OWNED.iter().chain(REMOVED) {
        remove(&mut merged, path);
    }
    overlay(&mut merged, platform);
    merged
}

fn overlay(target: &mut Value, top: &Value) {
    match (target, top) {
        (Value::Object(target), Value::Object(top)) => {
            for (key, value) in top {
                match target.get_mut(key) {
                    Some(existing) if existing.is_object() && value.is_object() => overlay(existing, value),
                    _ => {
                        target.insert(key.clone(), value.clone());
                    }
                }
            }
        }
        (target, top) => *target = top.clone(),
    }
}

/// Deletes the key at `path`, if it is there.
pub(crate) fn remove(value: &mut Value, path: &[&str]) {
    let Some((last, parents)) = path.split_last() else { return };
    let mut at = value;
    for key in parents {
        match at.get_mut(*key) {
            Some(next) => at = next,
            None => return,
        }
    }
    if let Some(object) = at.as_object_mut() {
        object.remove(*last);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn model() -> Model<'static> {
        Model { base_url: "http://127.0.0.1:8080/llm/openai/v1", api: "openai-completions", model: "m1" }
    }

    #[test]
    fn keys_hold_no_secret_and_point_at_the_proxy() {
        let text = platform_keys(18801, &model(), Some(Path::new("/data/u/logs/openclaw.log"))).to_string();
        assert!(text.contains("${ROOST_LLM_CREDENTIAL}"));
        assert!(text.contains("\"primary\":\"roost/m1\""));
        assert!(text.contains("http://127.0.0.1:8080/llm/openai/v1"));
        assert!(text.contains("/data/u/logs/openclaw.log"));
        assert!(!platform_keys(1, &model(), None).to_string().contains("logging"));
    }

    #[test]
    fn user_keys_survive_and_platform_keys_win() {
        let existing = json!({
            "gateway": { "bind": "lan", "port": 1, "auth": { "mode": "none", "token": "mine" }, "tls": { "enabled": true },
                         "trustedProxies": ["0.0.0.0/0"], "mode": "remote",
                         "http": { "endpoints": { "chatCompletions": { "enabled": true } } } },
            "channels": { "discord": { "enabled": true, "token": "bot" } },
            "models": { "providers": { "roost": { "apiKey": "stolen", "baseUrl": "http://evil" }, "other": { "api": "x" } } },
            "agents": { "defaults": { "model": { "primary": "other/x", "fallbacks": ["other/y"] }, "workspace": "/w" } },
            "meta": { "lastTouchedVersion": "2026.9.6" }
        });
        let merged = merge(existing, &platform_keys(18789, &model(), None));
        assert_eq!(merged["gateway"]["bind"], "loopback");
        assert_eq!(merged["gateway"]["port"], 18789);
        assert_eq!(merged["gateway"]["controlUi"], json!({ "enabled": true, "basePath": "/agent" }));
        assert_eq!(merged["gateway"]["auth"], json!({ "mode": "token" }), "auth is the platform's alone");
        assert!(merged["gateway"].get("tls").is_none());
        assert!(merged["gateway"].get("trustedProxies").is_none(), "no proxy is trusted");
        assert_eq!(merged["gateway"]["mode"], "local");
        assert_eq!(merged["gateway"]["http"]["endpoints"]["chatCompletions"]["enabled"], true);
        assert_eq!(merged["channels"]["discord"]["token"], "bot", "channels are Roost's config.patch's");
        assert_eq!(merged["models"]["providers"]["roost"]["apiKey"], "${ROOST_LLM_CREDENTIAL}");
        assert_eq!(merged["models"]["providers"]["roost"]["baseUrl"], "http://127.0.0.1:8080/llm/openai/v1");
        assert_eq!(merged["models"]["providers"]["other"]["api"], "x");
        assert_eq!(merged["agents"]["defaults"]["model"], json!({ "primary": "roost/m1" }));
        assert_eq!(merged["agents"]["defaults"]["workspace"], "/w");
        assert_eq!(merged["meta"]["lastTouchedVersion"], "2026.9.6");
    }

    #[test]
    fn the_discord_install_record_is_written_until_openclaw_imported_it() {
        let state = tempfile::tempdir().unwrap();
        let runtime = tempfile::tempdir().unwrap();
        let plugin = runtime.path().join("@openclaw/discord");
        std::fs::create_dir_all(&plugin).unwrap();
        assert!(write_discord_install_record(state.path(), &plugin).is_err(), "no package.json");
        std::fs::write(plugin.join("package.json"), r#"{"name":"@openclaw/discord","version":"2026.9.6"}"#).unwrap();
        write_discord_install_record(state.path(), &plugin).unwrap();
        let file = state.path().join(PLUGIN_INSTALLS_FILE);
        let record: Value = serde_json::from_slice(&std::fs::read(&file).unwrap()).unwrap();
        let discord = &record["installRecords"]["discord"];
        assert_eq!(discord["source"], "npm");
        assert_eq!(discord["spec"], "@openclaw/discord@2026.9.6");
        assert_eq!(discord["installPath"], json!(plugin));
        assert!(
            discord.get("sourcePath").is_none() && discord.get("artifactKind").is_none(),
            "an official npm install"
        );
        std::fs::rename(&file, file.with_extension("json.migrated")).unwrap();
        write_discord_install_record(state.path(), &plugin).unwrap();
        assert!(!file.exists(), "imported once is enough");
    }

    #[test]
    fn channels_whose_token_file_is_gone_are_dropped_on_the_rewrite() {
        let dir = tempfile::tempdir().unwrap();
        let telegram = dir.path().join("telegram-1.token");
        std::fs::write(&telegram, "1:x").unwrap();
        let discord = dir.path().join("discord-1.token");
        let mut config = json!({
            "channels": {
                "telegram": { "enabled": true, "tokenFile": telegram },
                "discord": { "enabled": true, "token": { "source": "file", "provider": "roost-discord", "id": "value" } },
                "slack": { "enabled": true },
            },
            "secrets": { "providers": { "roost-discord": { "source": "file", "path": discord, "mode": "singleValue" } } },
            "plugins": { "entries": { "telegram": { "enabled": true }, "discord": { "enabled": true }, "memory-core": {} } },
        });
        prune_channels(&mut config);
        assert_eq!(config["channels"]["telegram"]["tokenFile"], json!(telegram));
        assert!(config["channels"].get("discord").is_none() && config["channels"].get("slack").is_none(), "{config}");
        assert!(config["plugins"]["entries"].get("discord").is_none());
        assert!(config["secrets"]["providers"].get("roost-discord").is_none());
        assert!(config["plugins"]["entries"]["memory-core"].is_object());
        std::fs::remove_file(&telegram).unwrap();
        prune_channels(&mut config);
        assert!(config.get("channels").is_none(), "{config}");
        assert!(config["plugins"]["entries"].get("telegram").is_none());
    }

    #[test]
    fn a_file_that_is_not_an_object_counts_as_empty() {
        let platform = platform_keys(18789, &model(), None);
        assert_eq!(merge(json!([1, 2]), &platform), platform);
        assert_eq!(merge(Value::Null, &platform), platform);
    }
}
