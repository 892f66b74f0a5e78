//! Drives the real pages in headless Chromium (Playwright scripts in `web/tests/`).

use std::path::PathBuf;
use std::process::Command;

use crate::helpers::TestApp;

fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

/// Runs one Node spec against the server. Outside CI a missing browser toolchain skips with a
/// loud message; in CI (`CI=true`) it fails.
pub fn run_spec(app: &TestApp, spec: &str, env: &[(&str, &str)]) {
    let root = repo_root();
    let tests_dir = root.join("web/tests");
    let chromium = std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    let ready = tests_dir.join("node_modules/playwright-core").exists() && PathBuf::from(&chromium).exists();
    if !ready {
        let msg = "browser tests need `npm ci --prefix web/tests` and Debian chromium (run .ci/run)";
        if std::env::var("CI").is_ok_and(|v| v == "true") {
            panic!("{msg}");
        }
        eprintln!("SKIPPED {spec}: {msg}");
        return;
    }
    let status = Command::new("node")
        .arg(tests_dir.join(spec))
        .env("ROOST_URL", &app.origin)
        .env("SCREENSHOT_DIR", root.join("target/screenshots"))
        .envs(env.iter().copied())
        .status()
        .expect("node runs");
    assert!(status.success(), "{spec} failed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sign_up_log_in_create_and_revoke_a_token_in_chromium() {
    let app = TestApp::spawn().await;
    tokio::task::spawn_blocking(move || run_spec(&app, "auth.spec.mjs", &[])).await.unwrap();
}
