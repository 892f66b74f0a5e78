//! `/roost/files/…`, in process: only with the machine's secret, and never outside the workspace
//! (`..`, absolute paths, NUL, backslashes, over-long names, symlinks out), uploads bounded.

use crate::SECRET;
use crate::files::{send, sidecar};

fn status(answer: &str) -> &str {
    answer.get(9..12).unwrap_or_default()
}

fn body(answer: &str) -> &str {
    answer.split_once("\r\n\r\n").map_or("", |(_, body)| body)
}

#[tokio::test]
async fn files_are_listed_read_uploaded_and_deleted_with_the_machines_secret() {
    let sidecar = sidecar().await;
    let workspace = sidecar.state.as_path().join("workspace");

    let put = send(sidecar.addr, "PUT", "/roost/files/content?path=notes.md", Some(SECRET), b"# Hello").await;
    assert_eq!(status(&put), "200", "{put}");
    assert_eq!(std::fs::read(workspace.join("notes.md")).unwrap(), b"# Hello");

    std::fs::create_dir(workspace.join("sub dir")).unwrap();
    let list = send(sidecar.addr, "GET", "/roost/files/list", Some(SECRET), b"").await;
    assert_eq!(status(&list), "200", "{list}");
    let listing: serde_json::Value = serde_json::from_str(body(&list)).unwrap();
    assert_eq!(listing["entries"][0]["name"], "sub dir", "folders first: {listing}");
    assert_eq!(listing["entries"][0]["kind"], "dir");
    assert_eq!(listing["entries"][1]["name"], "notes.md");
    assert_eq!(listing["entries"][1]["size"], 7);
    assert!(listing["entries"][1]["modified"].as_u64().unwrap() > 1_700_000_000);

    let put = send(sidecar.addr, "PUT", "/roost/files/content?path=sub%20dir%2Fa.txt", Some(SECRET), b"abc").await;
    assert_eq!(status(&put), "200", "{put}");
    let read = send(sidecar.addr, "GET", "/roost/files/content?path=sub%20dir/a.txt", Some(SECRET), b"").await;
    assert_eq!(status(&read), "200", "{read}");
    assert!(read.to_ascii_lowercase().contains("content-length: 3"), "{read}");
    assert_eq!(body(&read), "abc");

    let refused = send(sidecar.addr, "DELETE", "/roost/files/content?path=sub%20dir", Some(SECRET), b"").await;
    assert_eq!(status(&refused), "409", "a folder with files is kept without recursive: {refused}");
    let deleted =
        send(sidecar.addr, "DELETE", "/roost/files/content?path=sub%20dir&recursive=true", Some(SECRET), b"").await;
    assert_eq!(status(&deleted), "200", "{deleted}");
    assert!(!workspace.join("sub dir").exists());
    let missing = send(sidecar.addr, "GET", "/roost/files/content?path=sub%20dir/a.txt", Some(SECRET), b"").await;
    assert_eq!(status(&missing), "404", "{missing}");
}

#[tokio::test]
async fn without_the_secret_nothing_is_read_written_or_deleted() {
    let sidecar = sidecar().await;
    let workspace = sidecar.state.as_path().join("workspace");
    std::fs::create_dir_all(&workspace).unwrap();
    std::fs::write(workspace.join("kept.txt"), b"private").unwrap();
    for secret in [None, Some("nope"), Some(&SECRET[..SECRET.len() - 1])] {
        for (method, path) in [
            ("GET", "/roost/files/list"),
            ("GET", "/roost/files/content?path=kept.txt"),
            ("PUT", "/roost/files/content?path=new.txt"),
            ("DELETE", "/roost/files/content?path=kept.txt"),
        ] {
            let answer = send(sidecar.addr, method, path, secret, b"x").await;
            assert_eq!(status(&answer), "401", "{secret:?} {method} {path}: {answer}");
            assert!(!answer.contains("private"), "{answer}");
        }
    }
    assert_eq!(std::fs::read(workspace.join("kept.txt")).unwrap(), b"private");
    assert!(!workspace.join("new.txt").exists());
}

#[tokio::test]
async fn paths_that_leave_the_workspace_are_refused() {
    let sidecar = sidecar().await;
    let workspace = sidecar.state.as_path().join("workspace");
    std::fs::create_dir_all(&workspace).unwrap();
    // Outside the workspace but inside the state dir: OpenClaw's config, say.
    std::fs::write(sidecar.state.as_path().join("openclaw.json"), b"{\"secret\":1}").unwrap();
    std::os::unix::fs::symlink(sidecar.state.as_path(), workspace.join("up")).unwrap();
    std::os::unix::fs::symlink(sidecar.state.as_path().join("openclaw.json"), workspace.join("config.json")).unwrap();
    let long = "a".repeat(256);
    let cases = [
        ("..%2Fopenclaw.json", "400"),
        ("..", "400"),
        ("a%2F..%2F..%2Fopenclaw.json", "400"),
        ("%2Fetc%2Fpasswd", "400"),
        ("a%00b", "400"),
        ("..%5Copenclaw.json", "400"),
        (long.as_str(), "400"),
        ("up%2Fopenclaw.json", "403"),
        ("config.json", "403"),
    ];
    for (path, want) in cases {
        let methods: &[&str] = if path == "config.json" { &["GET", "PUT"] } else { &["GET", "PUT", "DELETE"] };
        for method in methods {
            let answer =
                send(sidecar.addr, method, &format!("/roost/files/content?path={path}"), Some(SECRET), b"x").await;
            assert_eq!(status(&answer), want, "{method} {path}: {answer}");
            assert!(!answer.contains("secret"), "{answer}");
        }
    }
    let listed = send(sidecar.addr, "GET", "/roost/files/list?path=up", Some(SECRET), b"").await;
    assert_eq!(status(&listed), "403", "{listed}");
    assert_eq!(std::fs::read(sidecar.state.as_path().join("openclaw.json")).unwrap(), b"{\"secret\":1}");
    // Deleting a symlink removes the link, never what it points to.
    let unlinked = send(sidecar.addr, "DELETE", "/roost/files/content?path=config.json", Some(SECRET), b"").await;
    assert_eq!(status(&unlinked), "200", "{unlinked}");
    assert!(!workspace.join("config.json").exists());
    assert_eq!(std::fs::read(sidecar.state.as_path().join("openclaw.json")).unwrap(), b"{\"secret\":1}");
}

#[tokio::test]
async fn an_upload_declared_over_the_limit_is_refused_and_nothing_is_stored() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let sidecar = sidecar().await;
    let mut stream = tokio::net::TcpStream::connect(sidecar.addr).await.unwrap();
    let head = format!(
        "PUT /roost/files/content?path=big.bin HTTP/1.1\r\nhost: a\r\nx-roost-agent-secret: {SECRET}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
        roost_agent::workspace::MAX_UPLOAD_BYTES + 1
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    let _ = stream.write_all(&[0; 1024]).await;
    let mut got = Vec::new();
    let _ = tokio::time::timeout(std::time::Duration::from_secs(10), stream.read_to_end(&mut got)).await;
    let answer = String::from_utf8_lossy(&got);
    assert_eq!(status(&answer), "413", "{answer}");
    let workspace = sidecar.state.as_path().join("workspace");
    let kept = std::fs::read_dir(&workspace).map_or(0, |d| d.count());
    assert_eq!(kept, 0, "nothing kept, not even a temporary file");
}
