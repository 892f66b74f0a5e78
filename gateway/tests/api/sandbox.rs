//! The agent sandbox without OpenClaw: `roost agent-exec` itself, Roost's own process, and the
//! one-account rule when the kernel cannot confine agents.

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use clap::Parser;
use gateway::config::{Cli, Command as RoostCommand};
use serde_json::{Value, json};

use crate::helpers::{TestApp, error_code};

fn agent_exec(policy: &Value, command: &str) -> Output {
    Command::new(env!("CARGO_BIN_EXE_roost"))
        .arg("agent-exec")
        .arg(policy.to_string())
        .args(["--", "/bin/sh", "-c", command])
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

fn text(output: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr))
}

fn landlock_abi() -> Option<u8> {
    match provisioner::local::Support::probe() {
        provisioner::local::Support::Landlock { abi } if abi >= provisioner::local::sandbox::MIN_ABI => {
            Some(abi.min(6))
        }
        other => {
            assert!(std::env::var("CI").map_or(true, |v| v != "true"), "CI needs Landlock, found {other:?}");
            eprintln!("SKIPPED: no usable Landlock here ({other:?})");
            None
        }
    }
}

const LIMITS: &str = r#"{"open_files":256,"file_size_bytes":1048576,"oom_score_adj":300}"#;

#[test]
fn the_helper_confines_files_ports_signals_and_capabilities() {
    let Some(abi) = landlock_abi() else { return };
    let dir = tempfile::tempdir().unwrap();
    let (own, other) = (dir.path().join("own"), dir.path().join("other"));
    std::fs::create_dir_all(&own).unwrap();
    std::fs::create_dir_all(&other).unwrap();
    std::fs::write(other.join("secret"), "OTHER-SECRET").unwrap();
    let policy = json!({
        "rules": { "abi": abi, "read_write": [own, "/dev/null"], "read_exec": ["/usr", "/bin", "/lib", "/lib64", "/proc"], "bind_ports": [] },
        "limits": serde_json::from_str::<Value>(LIMITS).unwrap(),
    });
    let (o, x) = (own.display(), other.display());
    let out = agent_exec(
        &policy,
        &format!(
            "echo mine > {o}/f && cat {o}/f; cat {x}/secret; echo no > {x}/f; kill -0 {roost}; \
             grep CapEff /proc/self/status; ulimit -n; ulimit -c; cat /proc/self/oom_score_adj",
            roost = std::process::id()
        ),
    );
    let shown = text(&out);
    assert!(shown.contains("mine"), "its own dir works: {shown}");
    assert!(!shown.contains("OTHER-SECRET") && !other.join("f").exists(), "nothing else: {shown}");
    assert!(shown.matches("Permission denied").count() >= 2, "{shown}");
    assert!(shown.contains("Operation not permitted") || abi < 6, "no signal outside: {shown}");
    assert!(shown.contains("CapEff:\t0000000000000000"), "no capabilities: {shown}");
    assert!(shown.contains("\n256\n0\n300"), "limits: {shown}");

    // The same command without the rules reads what the rules hid: the check can fail.
    let open = agent_exec(&json!({ "rules": null, "limits": policy["limits"] }), &format!("cat {x}/secret"));
    assert!(text(&open).contains("OTHER-SECRET"));
}

#[test]
fn the_helper_refuses_to_run_anything_it_cannot_confine() {
    let bad = agent_exec(&json!({ "rules": "everything" }), "echo ran");
    assert_eq!(bad.status.code(), Some(125));
    assert!(!text(&bad).contains("ran\n") && text(&bad).contains("policy is not valid"), "{}", text(&bad));
    let policy = json!({
        "rules": { "abi": 99, "read_write": [], "read_exec": [], "bind_ports": [] },
        "limits": serde_json::from_str::<Value>(LIMITS).unwrap(),
    });
    let unknown = agent_exec(&policy, "echo ran");
    assert_eq!(unknown.status.code(), Some(125));
    assert!(!text(&unknown).contains("ran\n"), "{}", text(&unknown));
}

/// Roost is not dumpable, so a process of its user cannot read its environment even without
/// Landlock. Both sides run without capabilities (as when Roost runs as a plain user), and a
/// dumpable neighbour shows that the same read otherwise works.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn roosts_environment_is_closed_to_other_processes_of_its_user() {
    let dir = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let unconfined = json!({ "rules": null, "limits": serde_json::from_str::<Value>(LIMITS).unwrap() });
    let uncapped = |program: &str| {
        let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_roost"));
        command.arg("agent-exec").arg(unconfined.to_string()).args(["--", program]);
        command.stdout(Stdio::null()).stderr(Stdio::null()).kill_on_drop(true);
        command
    };
    let mut roost = uncapped(env!("CARGO_BIN_EXE_roost"))
        .args(["serve", "--agent-provider", "fake", "--listen", &format!("127.0.0.1:{port}")])
        .arg("--data-dir")
        .arg(dir.path())
        .env("ROOST_LLM_OPENAI_API_KEY", "sk-in-roosts-environment")
        .env("ROOST_LLM_OPENAI_BASE_URL", "http://127.0.0.1:9/v1")
        .spawn()
        .unwrap();
    let mut neighbour = uncapped("/bin/sleep").arg("60").env("NEIGHBOUR_MARK", "visible").spawn().unwrap();
    let http = reqwest::Client::new();
    let mut up = false;
    for _ in 0..100 {
        if http.get(format!("http://127.0.0.1:{port}/healthz")).send().await.is_ok_and(|r| r.status() == 200) {
            up = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(up, "roost serve answered");
    let pid = roost.id().unwrap();
    let read_roost = agent_exec(&unconfined, &format!("cat /proc/{pid}/environ; head -c 80 /proc/{pid}/maps"));
    let read_neighbour = agent_exec(&unconfined, &format!("cat /proc/{}/environ", neighbour.id().unwrap()));
    let _ = neighbour.kill().await;
    let _ = roost.kill().await;
    assert!(!text(&read_roost).contains("sk-in-roosts-environment"), "{}", text(&read_roost));
    assert!(text(&read_roost).matches("Permission denied").count() == 2, "{}", text(&read_roost));
    assert!(text(&read_neighbour).contains("NEIGHBOUR_MARK=visible"), "{}", text(&read_neighbour));
}

fn serve_args(dir: &Path, extra: &[&str]) -> Box<gateway::config::ServeArgs> {
    let data_dir = dir.to_str().unwrap();
    let mut argv = vec!["roost", "serve", "--listen", "127.0.0.1:0", "--data-dir", data_dir, "--no-prewarm"];
    argv.extend_from_slice(&["--agent-provider", "local", "--agent-exec-bin", env!("CARGO_BIN_EXE_roost")]);
    argv.extend_from_slice(extra);
    let RoostCommand::Serve(args) = Cli::try_parse_from(argv).unwrap().command else { unreachable!() };
    args
}

/// The local provider, launching through the real helper; no agent starts unless asked.
async fn local_app(extra: &[&str]) -> TestApp {
    let mut flags = vec!["--agent-provider", "local", "--agent-exec-bin", env!("CARGO_BIN_EXE_roost"), "--no-prewarm"];
    flags.extend_from_slice(extra);
    TestApp::spawn_with(&flags).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_landlock_one_account_is_served_unless_the_operator_accepts_the_risk() {
    let app = local_app(&["--assume-landlock-abi", "0"]).await;
    app.signed_up_user("first@example.com").await;
    let (status, code) = error_code(app.signup(&app.browser(), "second@example.com").await).await;
    assert_eq!((status, code.as_str()), (403, "account_limit"));
    assert_eq!(app.count("users").await, 1);

    // With the operator's consent a second account is accepted; a restart without it refuses.
    drop(app);
    let accepted = local_app(&["--assume-landlock-abi", "2", "--unsandboxed-agents"]).await;
    accepted.signed_up_user("one@example.com").await;
    accepted.signed_up_user("two@example.com").await;
    let refused = gateway::startup::Server::build(&serve_args(accepted.dir.path(), &["--assume-landlock-abi", "2"]))
        .await
        .err()
        .expect("two accounts and no sandbox: refused")
        .to_string();
    assert!(!refused.contains('\n'), "one line: {refused}");
    assert!(refused.contains("ABI 2") && refused.contains("--unsandboxed-agents"), "{refused}");
}
