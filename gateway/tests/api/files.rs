//! What Roost writes to disk is readable by Roost's user alone, whatever the umask.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use clap::Parser;
use gateway::config::{Cli, Command};
use gateway::startup::Server;

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap_or_else(|e| panic!("{}: {e}", path.display())).permissions().mode() & 0o777
}

#[tokio::test]
async fn the_data_dir_database_and_secret_key_are_private() {
    let parent = tempfile::tempdir().unwrap();
    std::fs::set_permissions(parent.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let data_dir = parent.path().join("fresh");
    let argv = ["roost", "serve", "--listen", "127.0.0.1:0", "--agent-provider", "fake", "--data-dir"];
    let Command::Serve(args) =
        Cli::try_parse_from(argv.iter().copied().chain([data_dir.to_str().unwrap()])).unwrap().command
    else {
        unreachable!()
    };
    let _server = Server::build(&args).await.expect("server starts");
    assert_eq!(mode(&data_dir), 0o700, "data dir");
    assert_eq!(mode(&data_dir.join("secret.key")), 0o600, "secret key");
    assert_eq!(mode(&data_dir.join("roost.db")), 0o600, "database");
    let wal = data_dir.join("roost.db-wal");
    if wal.exists() {
        assert_eq!(mode(&wal), 0o600, "write-ahead log");
    }
}

#[tokio::test]
async fn files_an_earlier_run_left_open_are_tightened() {
    let data_dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(data_dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let db = data_dir.path().join("roost.db");
    std::fs::write(&db, b"").unwrap();
    std::fs::set_permissions(&db, std::fs::Permissions::from_mode(0o644)).unwrap();
    let argv = ["roost", "serve", "--listen", "127.0.0.1:0", "--agent-provider", "fake", "--data-dir"];
    let Command::Serve(args) =
        Cli::try_parse_from(argv.iter().copied().chain([data_dir.path().to_str().unwrap()])).unwrap().command
    else {
        unreachable!()
    };
    let _server = Server::build(&args).await.expect("server starts");
    assert_eq!(mode(data_dir.path()), 0o700);
    assert_eq!(mode(&db), 0o600);
}
