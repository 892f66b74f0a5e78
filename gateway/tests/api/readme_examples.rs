//! The README's shell examples run as written: each block under a `<!-- readme-test: NAME -->`
//! marker is extracted and run with bash against a live server.

use std::process::Command;
use std::time::Duration;

use crate::helpers::{TestApp, wait_until_within};

const MINUTE: Duration = Duration::from_secs(60);

/// The ```sh block right after `<!-- readme-test: {name} -->` in the README.
fn readme_block(name: &str) -> String {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../README.md")).unwrap();
    let marker = format!("<!-- readme-test: {name} -->");
    let after = &readme[readme.find(&marker).unwrap_or_else(|| panic!("README has no {marker}")) + marker.len()..];
    let body = after.trim_start().strip_prefix("```sh\n").expect("a ```sh block right after the marker");
    body[..body.find("\n```").expect("the block ends")].to_string()
}

/// Runs `script` with bash (`-euo pipefail`) in `dir`, giving up after `within`.
fn run_bash(script: &str, env: &[(&str, &str)], dir: &std::path::Path, within: Duration) -> std::process::Output {
    for tool in ["bash", "curl", "jq", "openssl", "sed", "timeout"] {
        let found = Command::new("sh").args(["-c", &format!("command -v {tool}")]).output().unwrap().status.success();
        assert!(found, "the README's examples need `{tool}` (scripts/install-test-deps installs it)");
    }
    Command::new("timeout")
        .arg(within.as_secs().to_string())
        .args(["bash", "-euo", "pipefail", "-c", script])
        .envs(env.iter().copied())
        .current_dir(dir)
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
        run_bash(&script, &[("ROOST_URL", &origin), ("ROOST_TOKEN", &me.token)], &std::env::temp_dir(), MINUTE)
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_signed_webhook_examples_run_as_written() {
    let app = TestApp::spawn_with(&["--allow-private-webhooks"]).await;
    let me = crate::tasks::scripter(&app, "hooked@example.com").await;
    let hook = crate::tasks::receiver(0).await;
    let dir = tempfile::tempdir().unwrap();

    let script = readme_block("task-webhook");
    let env = [("ROOST_URL", app.origin.clone()), ("ROOST_TOKEN", me.token.clone()), ("HOOK_URL", hook.url.clone())];
    let (path, submit) = (dir.path().to_owned(), script.clone());
    let out = tokio::task::spawn_blocking(move || {
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
        run_bash(&submit, &env, &path, MINUTE)
    })
    .await
    .unwrap();
    assert!(out.status.success(), "the submission failed: {}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "queued");
    wait_until_within("the webhook is delivered", MINUTE, || async { !hook.got.lock().unwrap().is_empty() }).await;
    let (signature, body) = hook.got.lock().unwrap()[0].clone();
    std::fs::write(dir.path().join("body.json"), &body).unwrap();

    let verify = readme_block("task-webhook-verify");
    let check = |secret: String| {
        let (verify, signature, path) = (verify.clone(), signature.clone(), dir.path().to_owned());
        tokio::task::spawn_blocking(move || {
            let env = [("SIGNATURE", signature.as_str()), ("ROOST_WEBHOOK_SECRET", secret.as_str())];
            run_bash(&verify, &env, &path, MINUTE)
        })
    };
    let out = check(me.webhook_secret.clone()).await.unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "the check refused a real delivery: {stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut lines = stdout.lines();
    assert_eq!(lines.next(), Some("task.completed"), "{stdout}");
    assert!(lines.next().is_some_and(|text| text.starts_with("Hello from your simulated agent")), "{stdout}");

    let forged = check("whsec_not_the_secret".to_string()).await.unwrap();
    assert!(
        !forged.status.success(),
        "a wrong secret must fail the check: {}",
        String::from_utf8_lossy(&forged.stdout)
    );
    assert!(forged.stdout.is_empty(), "nothing of the body is trusted");
}
