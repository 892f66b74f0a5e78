//! The deploy files (research §8), parsed, so a careless edit cannot silently drop what keeps
//! WebSockets up through deploys, runs migrations, or makes Roost provision on Fly.

use std::path::PathBuf;

use toml::Value;

fn repo_file(name: &str) -> String {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).parent().unwrap().join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn at<'a>(value: &'a Value, path: &str) -> &'a Value {
    path.split('.').fold(value, |v, key| v.get(key).unwrap_or_else(|| panic!("fly.toml has no {path}")))
}

#[test]
fn fly_toml_keeps_websockets_drains_migrates_and_provisions_on_fly() {
    let fly: Value = toml::from_str(&repo_file("fly.toml")).expect("fly.toml parses");
    assert_eq!(at(&fly, "kill_signal").as_str(), Some("SIGTERM"));
    let kill = at(&fly, "kill_timeout").as_integer().expect("kill_timeout in seconds");
    assert!((60..=300).contains(&kill), "kill_timeout {kill}: long enough to drain, within Fly's 300 s");
    assert_eq!(at(&fly, "deploy.release_command").as_str(), Some("migrate"), "the image's entrypoint is roost");
    assert_eq!(at(&fly, "deploy.strategy").as_str(), Some("bluegreen"));
    assert!(fly.get("mounts").is_none(), "a volume would pin the gateway to one host and rule out bluegreen");

    let env = at(&fly, "env");
    assert_eq!(env["ROOST_AGENT_PROVIDER"].as_str(), Some("fly"));
    assert_eq!(env["ROOST_LISTEN"].as_str(), Some("0.0.0.0:8080"), "Fly Proxy reaches Machines over IPv4");
    assert_eq!(env["ROOST_CLIENT_IP_HEADER"].as_str(), Some("Fly-Client-IP"));
    for secret in ["ROOST_SECRET_KEY", "ROOST_DATABASE", "ROOST_DATABASE_TOKEN", "ROOST_FLY_API_TOKEN"] {
        assert!(env.get(secret).is_none(), "{secret} belongs in `fly secrets`, not fly.toml");
    }

    let http = at(&fly, "http_service");
    assert_eq!(http["internal_port"].as_integer(), Some(8080));
    assert_eq!(http["auto_stop_machines"].as_str(), Some("off"), "the stop loop would cut live sockets");
    assert!(http["min_machines_running"].as_integer().unwrap() >= 2, "one Machine is down during a deploy");
    assert_eq!(at(http, "concurrency.type").as_str(), Some("connections"));
    let soft = at(http, "concurrency.soft_limit").as_integer().unwrap();
    let hard = at(http, "concurrency.hard_limit").as_integer().unwrap();
    assert!(soft < hard && hard <= 2048, "soft {soft} < hard {hard} <= the edge's 2048 per app");
    assert!(at(http, "http_options.idle_timeout").as_integer().unwrap() >= 300, "idle sockets between turns");
    let checks = http["checks"].as_array().expect("health checks");
    assert!(checks.iter().any(|c| c["path"].as_str() == Some("/readyz") && c["method"].as_str() == Some("GET")));

    let vm = &fly["vm"].as_array().expect("[[vm]]")[0];
    let memory = vm["memory"].as_str().unwrap();
    let mb: i64 = match memory.strip_suffix("gb") {
        Some(gb) => gb.parse::<i64>().unwrap() * 1024,
        None => memory.strip_suffix("mb").unwrap().parse().unwrap(),
    };
    // README, Performance: 122 MiB for 1,000 relaying sockets; hard_limit sockets at 175 KiB
    // each (the worst cell) plus 64 MiB of base and hashing must fit with half the VM to spare.
    assert!(mb >= 2 * (hard * 175 / 1024 + 64), "{memory} is too small for {hard} sockets");
}

#[test]
fn both_images_build_from_sources_only() {
    let ignore = repo_file(".dockerignore");
    for entry in ["target/", "**/node_modules/", ".git/"] {
        assert!(ignore.lines().any(|l| l.trim() == entry), ".dockerignore lacks {entry}");
    }
    let gateway = repo_file("Dockerfile");
    assert!(gateway.contains("--locked") && gateway.contains("\nUSER "), "the gateway image: locked, non-root");
    let agent = repo_file("agent/Dockerfile");
    assert!(agent.contains("\nUSER node") && agent.contains("roost-agent\"]"), "the agent image: non-root sidecar");
}
