//! `agent/Dockerfile` pins what the local runtime pins, so the e2e tests here test the image's
//! versions, and points the sidecar where the provisioner mounts the volume.

use std::collections::HashMap;

fn dockerfile() -> String {
    std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/Dockerfile")).unwrap()
}

/// `ARG NAME=value` defaults.
fn args(text: &str) -> HashMap<String, String> {
    text.lines()
        .filter_map(|l| l.trim().strip_prefix("ARG ")?.split_once('='))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect()
}

#[test]
fn the_image_pins_the_local_runtimes_versions_and_uses_the_volume() {
    let text = dockerfile();
    let args = args(&text);
    assert_eq!(args["NODE_VERSION"], provisioner::local::NODE_VERSION);
    assert_eq!(args["OPENCLAW_VERSION"], provisioner::local::OPENCLAW_VERSION);
    assert_eq!(
        args["DISCORD_PLUGIN_VERSION"],
        provisioner::local::DISCORD_PLUGIN_VERSION,
        "the local runtime's plugin"
    );
    assert_eq!(
        provisioner::local::DISCORD_PLUGIN_VERSION,
        provisioner::local::OPENCLAW_VERSION,
        "plugin and gateway move together"
    );
    assert!(text.contains("\"@openclaw/discord@${DISCORD_PLUGIN_VERSION}\""));
    for env in [
        "ROOST_AGENT_STATE_DIR=/data/openclaw",
        "ROOST_AGENT_HOME=/data/home",
        "ROOST_AGENT_TMP_DIR=/data/tmp",
        "ROOST_AGENT_LISTEN=\"[::]:8080\"",
        "ROOST_AGENT_PLUGIN_PATHS=/app/node_modules/@openclaw/discord",
        "ROOST_AGENT_HEAP_MB=",
    ] {
        assert!(text.contains(env), "agent/Dockerfile lacks {env}");
    }
    assert!(text.contains("ENTRYPOINT [\"/usr/bin/tini\", \"--\", \"/usr/local/bin/roost-agent\"]"));
}
