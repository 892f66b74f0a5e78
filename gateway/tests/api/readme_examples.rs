//! The README's shell examples run as written: each block under a `<!-- readme-test: NAME -->`
//! marker is extracted and run with bash against a live server.

use std::process::Command;
use std::time::Duration;

use crate::helpers::TestApp;

/// The ```sh block right after `<!-- readme-test: {name} -->` in the README.
fn readme_block(name: &str) -> String {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../README.md")).unwrap();
    let marker = format!("<!-- readme-test: {name} -->");
    let after = &readme[readme.find(&marker).unwrap_or_else(|| panic!("README has no {marker}")) + marker.len()..];
    let body = after.trim_start().strip_prefix("```sh\n").expect("a ```sh block right after the marker");
    body[..body.find("\n```").expect("the block ends")].to_string()
}

/// Runs `script` with bash (`-euo pipefail`), giving up after `within`.
fn run_bash(script: &str, env: &[(&str, &str)], within: Duration) -> std::process::Output {
    for tool in ["bash", "curl", "jq", "timeout"] {
        let found = Command::new("sh").args(["-c", &format!("command -v {tool}")]).output().unwrap().status.success();
        assert!(found, "the README's examples need `{tool}` (scripts/install-test-deps installs it)");
    }
    Command::new("timeout")
        .arg(within.as_secs().to_string())
        .args(["bash", "-euo", "pipefail", "-c", script])
        .envs(env.iter().copied())
        .output()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_task_api_curl_example_runs_as_written() {
    let app = TestApp::spawn().await;
    let me = crate::tasks::scripter(&app, "script@example.com").await;
    let script = readme_block("task-api");
    let origin = app.origin.clone();
    let out = tokio::task::spawn_blocking(move || {
        run_bash(&script, &[("ROOST_URL", &origin), ("ROOST_TOKEN", &me.token)], Duration::from_secs(60))
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "the example failed: {stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    let answer: serde_json::Value = serde_json::from_str(&stdout).expect("the example prints the task as JSON");
    assert_eq!(answer["status"], "completed", "{answer}");
    assert!(answer["text"].as_str().is_some_and(|t| t.contains("simulated agent")), "{answer}");
    assert!(answer["credits_used"].is_number(), "{answer}");
}
