//! Two real `roost serve` processes with `--agent-provider fly`, on one database, against one
//! fake Machines API (every machine's agent address is a simulated agent on loopback): racing
//! starts, stops and wakes of the same users through both make exactly one app, volume and
//! machine per user. `roost reconcile` run beside them finds nothing to fix and takes nothing
//! from them.

use std::path::Path;

use fakes::fly::{FakeFly, FakeFlyOptions, Op};
use gateway::machines::simulated::{Options as AgentOptions, SimulatedAgent};
use serde_json::Value;

use crate::helpers::wait_until_within;
use crate::two_instances::{Instance, user};

const SETTLE: std::time::Duration = std::time::Duration::from_secs(60);

fn fly_flags(fake: &FakeFly, agent: &SimulatedAgent) -> Vec<String> {
    [
        "--agent-provider",
        "fly",
        "--fly-api-token",
        fake.token(),
        "--fly-org",
        fake.org_slug(),
        "--fly-image",
        "registry.example/agent@sha256:00",
        "--fly-regions",
        "iad,ord",
        "--fly-api-base",
        &fake.base_url(),
        "--fly-agent-address",
        &agent.ws_url(),
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

fn live_machines(fake: &FakeFly, app: &str) -> Vec<Value> {
    fake.machines(app)
        .into_iter()
        .filter(|m| !matches!(m["state"].as_str(), Some("destroyed" | "destroying")))
        .collect()
}

/// Every app in the fake has exactly one live machine and one volume, and there are `users` apps.
fn one_of_each(fake: &FakeFly, users: usize) -> bool {
    let apps = fake.app_names();
    apps.len() == users && apps.iter().all(|a| live_machines(fake, a).len() == 1 && fake.volumes(a).len() == 1)
}

async fn all_ready(instances: &[&Instance], users: &[(String, String)]) {
    for (_, token) in users {
        wait_until_within("the agent is ready on both instances", SETTLE, || async {
            let mut ready = true;
            for instance in instances {
                ready &= instance.machine(token).await["state"] == "ready";
            }
            ready
        })
        .await;
    }
}

async fn reconcile_once(data: &Path, flags: &[String]) -> String {
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_roost"))
        .args(["reconcile", "--listen", "127.0.0.1:0", "--data-dir", data.to_str().unwrap()])
        .args(flags)
        .env("RUST_LOG", "warn")
        .output()
        .await
        .expect("roost reconcile runs");
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(out.status.success(), "roost reconcile failed: {stdout}{}", String::from_utf8_lossy(&out.stderr));
    stdout
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fly_two_instances_racing_starts_and_wakes_make_one_machine_per_user() {
    let fake = FakeFly::spawn(FakeFlyOptions {
        transition_step: Some(std::time::Duration::from_millis(5)),
        list_lag: 1,
        ..Default::default()
    })
    .await;
    // Readiness is all the instances ask of it here (no chat), so any token will do.
    let agent = SimulatedAgent::spawn(AgentOptions::default()).await.unwrap();
    let flags = fly_flags(&fake, &agent);
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path();
    let a = Instance::start_with(data, "fly-a", &flags).await;
    let b = Instance::start_with(data, "fly-b", &flags).await;
    let mut users = Vec::new();
    for n in 0..3 {
        users.push(user(&a, &format!("fly-race-{n}@example.com")).await);
    }

    // Both instances start every user at once.
    let mut racing = Vec::new();
    for (_, token) in &users {
        racing.push(a.send(reqwest::Method::POST, "/api/machine/restart", token));
        racing.push(b.send(reqwest::Method::POST, "/api/machine/restart", token));
    }
    for res in futures_util::future::join_all(racing).await {
        assert_eq!(res.status(), 202);
    }
    all_ready(&[&a, &b], &users).await;
    assert!(one_of_each(&fake, users.len()), "apps {:?}", fake.app_names());
    assert_eq!(fake.calls(Op::MachineCreate), users.len(), "one create per user");

    // Stops through one and wakes through the other, crossing over.
    for round in 0..2 {
        let (stopper, waker) = if round % 2 == 0 { (&a, &b) } else { (&b, &a) };
        let mut racing = Vec::new();
        for (_, token) in &users {
            racing.push(stopper.send(reqwest::Method::POST, "/api/machine/stop", token));
            racing.push(waker.send(reqwest::Method::POST, "/api/machine/restart", token));
        }
        for res in futures_util::future::join_all(racing).await {
            assert!(res.status().is_success(), "{}", res.status());
        }
        for (_, token) in &users {
            if waker.machine(token).await["state"] != "ready" {
                let _ = waker.send(reqwest::Method::POST, "/api/machine/restart", token).await;
            }
        }
        all_ready(&[&a, &b], &users).await;
        assert!(one_of_each(&fake, users.len()), "round {round}: apps {:?}", fake.app_names());
    }
    assert_eq!(fake.calls(Op::MachineCreate), users.len(), "wakes create nothing");

    // A reconciler round beside them: the running agents are theirs (busy), nothing is swept.
    let printed = reconcile_once(data, &flags).await;
    assert!(printed.contains("0 orphan apps, 0 duplicate machines, 0 leftover volumes"), "{printed}");
    assert!(printed.contains(&format!("{} busy", users.len())), "{printed}");
    for (_, token) in &users {
        assert_eq!(a.machine(token).await["state"], "ready", "the agents were left running");
    }
    assert!(one_of_each(&fake, users.len()));
}
