//! Crash limits, memory samples and the heap cap, with the stand-in.

use std::sync::Arc;
use std::time::{Duration, Instant};

use provisioner::local::CrashLimit;
use provisioner::{MachineState, Provider, Stage};

use super::{Recorder, node, port_of, provider_with, spec};

fn launches(dir: &std::path::Path, user: &str) -> usize {
    std::fs::read_to_string(dir.join(format!("users/{user}/state/launches"))).unwrap_or_default().lines().count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_loop_ends_in_failed_with_its_reason_and_a_start_brings_it_back() {
    let Some(node) = node() else { return };
    let dir = tempfile::tempdir().unwrap();
    let background = Arc::new(Recorder::default());
    let local = provider_with(dir.path(), node, background.clone(), |o| {
        o.crash_limit = CrashLimit { crashes: 3, window: Duration::from_secs(60) };
    })
    .await;
    let machine = local.start(&spec("c1"), &Recorder::default()).await.unwrap();
    // From now on every launch exits with code 3 at once.
    let _ = reqwest::get(format!("http://127.0.0.1:{}/crash-loop", port_of(&machine.address))).await;
    let deadline = Instant::now() + Duration::from_secs(30);
    while local.status("c1").await != MachineState::Failed {
        assert!(Instant::now() < deadline, "the crash loop did not end; stages {:?}", background.stages());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (_, stage, reason) = background.0.lock().unwrap().last().cloned().unwrap();
    assert_eq!(stage, Stage::Failed);
    assert_eq!(reason, "your agent crashed 3 times in 1 minute (last: exit code 3); it was stopped");
    assert_eq!(launches(dir.path(), "c1"), 3, "the first launch and two restarts");
    assert_eq!(local.address("c1").await, None);
    assert_eq!(local.memory_bytes("c1").await, None);
    // A restart would be reported at once, before its backoff: watch a while for one.
    let watched = Instant::now();
    while watched.elapsed() < Duration::from_millis(1500) {
        assert_eq!(background.stages().last(), Some(&Stage::Failed), "restarted after failing");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(local.status("c1").await, MachineState::Failed);

    // The user's Restart: a start replaces the failed agent.
    std::fs::remove_file(dir.path().join("users/c1/state/crash-loop")).unwrap();
    let machine = local.start(&spec("c1"), &Recorder::default()).await.unwrap();
    assert_eq!(local.status("c1").await, MachineState::Ready);
    assert_eq!(local.address("c1").await.as_deref(), Some(machine.address.as_str()));
    assert_eq!(launches(dir.path(), "c1"), 4);
    local.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_running_agent_has_its_memory_sampled_and_its_heap_capped() {
    let Some(node) = node() else { return };
    let dir = tempfile::tempdir().unwrap();
    let local = provider_with(dir.path(), node, Arc::new(Recorder::default()), |o| {
        o.memory_sample_interval = Duration::from_millis(100);
    })
    .await;
    local.start(&spec("m1"), &Recorder::default()).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    let bytes = loop {
        if let Some(bytes) = local.memory_bytes("m1").await {
            break bytes;
        }
        assert!(Instant::now() < deadline, "no memory sample");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    // A Node process with an HTTP server: tens of megabytes, not kilobytes, not gigabytes.
    assert!((10 << 20..2 << 30).contains(&bytes), "{bytes} bytes");

    let heap: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("users/m1/state/heap.json")).unwrap()).unwrap();
    let limit = heap["heapSizeLimit"].as_u64().unwrap();
    // Node's own default on a large host is 2-4 GiB; the cap brings it under 1 GiB.
    assert!((512 << 20..1 << 30).contains(&limit), "heap limit {limit}: {heap}");
    local.stop("m1").await.unwrap();
    assert_eq!(local.memory_bytes("m1").await, None);
}
