//! Migrations from several processes at once (Fly's `release_command` next to `serve`, or two
//! instances starting together) apply each file exactly once, and every process succeeds.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn processes_migrating_one_database_at_once_all_succeed() {
    for _round in 0..3 {
        let dir = tempfile::tempdir().unwrap();
        let runs: Vec<_> = (0..4)
            .map(|_| {
                tokio::process::Command::new(env!("CARGO_BIN_EXE_roost"))
                    .arg("migrate")
                    .arg("--data-dir")
                    .arg(dir.path())
                    .output()
            })
            .collect();
        let mut applied = 0;
        for output in futures_util::future::join_all(runs).await {
            let output = output.unwrap();
            let said =
                format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
            assert!(output.status.success(), "a concurrent migrate failed: {said}");
            applied +=
                said.split("applied ").nth(1).and_then(|n| n.split(' ').next()?.parse::<usize>().ok()).unwrap_or(0);
        }
        assert_eq!(
            applied,
            gateway::db::migrate::MIGRATIONS.len(),
            "each migration was applied by exactly one process"
        );
    }
}
