//! Two real `roost serve` processes on one libSQL file and data dir, with the local provider and
//! the provisioner's stand-in OpenClaw: racing starts, stops and wakes of the same users through
//! both never give a user two agents, and a killed instance's users are taken over.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

use crate::helpers::wait_until_within;

const SETTLE: Duration = Duration::from_secs(60);

pub(crate) struct Instance {
    pub(crate) child: Child,
    pub(crate) origin: String,
}

impl Instance {
    async fn start(data: &Path, name: &str) -> Self {
        let tests = concat!(env!("CARGO_MANIFEST_DIR"), "/../provisioner/tests/local");
        let local = [
            "--agent-provider".to_string(),
            "local".into(),
            "--node-bin".into(),
            "node".into(),
            "--assume-landlock-abi".into(),
            "0".into(),
            "--openclaw-bin".into(),
            format!("{tests}/stand_in_openclaw.mjs"),
            "--agent-exec-bin".into(),
            format!("{tests}/exec_as_is.sh"),
            "--unsandboxed-agents".into(),
        ];
        Self::start_with(data, name, &local).await
    }

    /// `roost serve` with these provider flags. With `TWO_INSTANCES_LOG` set (a log filter),
    /// each instance logs to `/tmp/two-<name>.log`.
    pub(crate) async fn start_with(data: &Path, name: &str, provider: &[String]) -> Self {
        let mut child = Command::new(env!("CARGO_BIN_EXE_roost"))
            .args(["serve", "--listen", "127.0.0.1:0", "--data-dir", data.to_str().unwrap()])
            .args(provider)
            .args(["--no-prewarm", "--agent-lease-ttl-ms", "6000"])
            .env("RUST_LOG", std::env::var("TWO_INSTANCES_LOG").unwrap_or_else(|_| "warn".into()))
            .stdout(std::process::Stdio::piped())
            .stderr(match std::env::var("TWO_INSTANCES_LOG") {
                Ok(_) => std::fs::File::create(format!("/tmp/two-{name}.log")).unwrap().into(),
                Err(_) => std::process::Stdio::inherit(),
            })
            .kill_on_drop(true)
            .spawn()
            .expect("roost serve starts");
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let origin = tokio::time::timeout(SETTLE, async {
            while let Some(line) = lines.next_line().await.unwrap() {
                if let Some(origin) = line.strip_prefix("Roost is running. Open ") {
                    return origin.trim().to_string();
                }
            }
            panic!("roost serve exited before it was running");
        })
        .await
        .expect("roost serve says it is running");
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        Self { child, origin }
    }

    pub(crate) async fn send(&self, method: reqwest::Method, path: &str, token: &str) -> reqwest::Response {
        reqwest::Client::new()
            .request(method, format!("{}{path}", self.origin))
            .bearer_auth(token)
            .send()
            .await
            .expect("the instance answers")
    }

    pub(crate) async fn machine(&self, token: &str) -> Value {
        self.send(reqwest::Method::GET, "/api/machine", token).await.json().await.unwrap()
    }
}

/// A user signed up through `instance`, with an API token both instances accept.
pub(crate) async fn user(instance: &Instance, email: &str) -> (String, String) {
    let client = reqwest::Client::new();
    let res = client
        .post(format!("{}/api/auth/signup", instance.origin))
        .header("Origin", &instance.origin)
        .json(&json!({ "email": email, "password": crate::helpers::PASSWORD }))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    let cookie = res.headers()["set-cookie"].to_str().unwrap().split(';').next().unwrap().to_string();
    let id = res.json::<Value>().await.unwrap()["user"]["id"].as_str().unwrap().to_string();
    let res = client
        .post(format!("{}/api/tokens", instance.origin))
        .header("Origin", &instance.origin)
        .header("cookie", cookie)
        .json(&json!({ "name": "race" }))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    let token = res.json::<Value>().await.unwrap()["token"].as_str().unwrap().to_string();
    (id, token)
}

/// The user's agents alive now: every launch of the stand-in records its pid in the state dir.
fn agents_alive(data: &Path, user: &str) -> usize {
    let launches = std::fs::read_to_string(data.join("users").join(user).join("state/launches")).unwrap_or_default();
    launches
        .lines()
        .filter_map(|pid| pid.trim().parse::<u32>().ok())
        .filter(|pid| std::fs::read_to_string(format!("/proc/{pid}/status")).is_ok_and(|s| !s.contains("State:\tZ")))
        .count()
}

async fn ready_with_one_agent(instances: &[&Instance], data: &Path, users: &[(String, String)]) {
    for (id, token) in users {
        wait_until_within("the agent is ready with exactly one process", SETTLE, || async {
            let mut all_ready = true;
            for instance in instances {
                all_ready &= instance.machine(token).await["state"] == "ready";
            }
            all_ready && agents_alive(data, id) == 1
        })
        .await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_on_one_database_give_each_user_exactly_one_agent() {
    if std::process::Command::new("node").arg("--version").output().is_err() {
        assert!(std::env::var("CI").map_or(true, |v| v != "true"), "node is required in CI");
        eprintln!("SKIPPED: node is not installed");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let data: PathBuf = dir.path().to_path_buf();
    let a = Instance::start(&data, "a").await;
    let b = Instance::start(&data, "b").await;
    let mut users = Vec::new();
    for n in 0..3 {
        users.push(user(&a, &format!("race-{n}@example.com")).await);
    }

    // Watches every user's processes for the whole race: never two at once.
    let most: Arc<Mutex<HashMap<String, usize>>> = Arc::default();
    let watching = {
        let (most, data, ids) =
            (most.clone(), data.clone(), users.iter().map(|(id, _)| id.clone()).collect::<Vec<_>>());
        tokio::spawn(async move {
            loop {
                for id in &ids {
                    let alive = agents_alive(&data, id);
                    let mut most = most.lock().unwrap();
                    let seen = most.entry(id.clone()).or_default();
                    *seen = (*seen).max(alive);
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
    };

    // Both instances wake every user at once.
    let restart = reqwest::Method::POST;
    let mut racing = Vec::new();
    for (_, token) in &users {
        racing.push(a.send(restart.clone(), "/api/machine/restart", token));
        racing.push(b.send(restart.clone(), "/api/machine/restart", token));
    }
    for res in futures_util::future::join_all(racing).await {
        assert_eq!(res.status(), 202);
    }
    ready_with_one_agent(&[&a, &b], &data, &users).await;

    // A third instance starting up leaves the others' agents alone: no reaping, no rows marked
    // stopped.
    let launches = |id: &str| std::fs::read_to_string(data.join("users").join(id).join("state/launches")).unwrap();
    let before: Vec<String> = users.iter().map(|(id, _)| launches(id)).collect();
    let c = Instance::start(&data, "c").await;
    for ((id, token), before) in users.iter().zip(&before) {
        assert_eq!(c.machine(token).await["state"], "ready");
        assert_eq!(agents_alive(&data, id), 1);
        assert_eq!(&launches(id), before, "no agent was restarted");
    }
    drop(c);

    // Stops through one and wakes through the other, crossing over, three times.
    for round in 0..3 {
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
            // Whichever came last wins; a stopped agent is woken again to end the round ready.
            if waker.machine(token).await["state"] != "ready" {
                let _ = waker.send(reqwest::Method::POST, "/api/machine/restart", token).await;
            }
        }
        ready_with_one_agent(&[&a, &b], &data, &users).await;
    }

    // An instance dies without letting go: the other takes its users over once their leases lapse.
    let Instance { mut child, .. } = a;
    child.kill().await.unwrap();
    for (_, token) in &users {
        let res = b.send(reqwest::Method::POST, "/api/machine/restart", token).await;
        assert_eq!(res.status(), 202);
    }
    ready_with_one_agent(&[&b], &data, &users).await;

    watching.abort();
    for (id, _) in &users {
        assert_eq!(most.lock().unwrap().get(id).copied(), Some(1), "user {id} never had two agents");
    }
}
