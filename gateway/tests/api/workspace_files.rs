//! `/api/files`: the agent's workspace with the local provider (on disk, so no agent runs):
//! list, download, upload, delete; every way out of the workspace refused; oversize uploads
//! refused with nothing stored; one user never reaches another's files.

use std::path::PathBuf;

use reqwest::{Client, Method, Response};
use serde_json::Value;

use crate::helpers::{TestApp, error_code};

async fn local_app() -> TestApp {
    TestApp::spawn_with(&["--agent-provider", "local", "--agent-exec-bin", env!("CARGO_BIN_EXE_roost"), "--no-prewarm"])
        .await
}

fn workspace(app: &TestApp, user: &str) -> PathBuf {
    app.dir.path().join("users").join(user).join("state/workspace")
}

/// `path` is put in the query as given: tests write it percent-encoded where they mean to.
async fn call(app: &TestApp, client: &Client, method: Method, route: &str, body: Vec<u8>) -> Response {
    client.request(method, app.url(route)).header("Origin", &app.origin).body(body).send().await.unwrap()
}

#[tokio::test]
async fn files_are_listed_uploaded_downloaded_and_deleted() {
    let app = local_app().await;
    let (client, user) = app.signed_up_user("files@example.com").await;

    let empty: Value = call(&app, &client, Method::GET, "/api/files", vec![]).await.json().await.unwrap();
    assert_eq!(empty["entries"], serde_json::json!([]), "{empty}");

    let put = call(&app, &client, Method::PUT, "/api/files/content?path=notes.md", b"# Plan\n".to_vec()).await;
    assert_eq!(put.status(), 201);
    let put: Value = put.json().await.unwrap();
    assert_eq!((put["path"].as_str(), put["size"].as_u64()), (Some("notes.md"), Some(7)));
    assert_eq!(std::fs::read(workspace(&app, &user).join("notes.md")).unwrap(), b"# Plan\n");

    // A folder the agent made, with a page it wrote.
    std::fs::create_dir(workspace(&app, &user).join("site")).unwrap();
    std::fs::write(workspace(&app, &user).join("site/index.html"), b"<script>alert(1)</script>").unwrap();
    let list: Value = call(&app, &client, Method::GET, "/api/files", vec![]).await.json().await.unwrap();
    let names: Vec<_> =
        list["entries"].as_array().unwrap().iter().map(|e| (e["name"].clone(), e["kind"].clone())).collect();
    assert_eq!(names, [("site".into(), "dir".into()), ("notes.md".into(), "file".into())], "{list}");
    assert_eq!(list["entries"][1]["size"], 7);

    let md = call(&app, &client, Method::GET, "/api/files/content?path=notes.md", vec![]).await;
    assert_eq!(md.status(), 200);
    assert_eq!(md.headers()["content-type"], "text/plain; charset=utf-8");
    assert_eq!(md.headers()["x-content-type-options"], "nosniff");
    assert!(md.headers()["content-disposition"].to_str().unwrap().starts_with("inline; filename=\"notes.md\""));
    assert_eq!(md.bytes().await.unwrap().as_ref(), b"# Plan\n");

    // An agent-written page never runs on Roost's origin.
    let page = call(&app, &client, Method::GET, "/api/files/content?path=site%2Findex.html", vec![]).await;
    assert_eq!(page.status(), 200);
    assert_eq!(page.headers()["content-type"], "text/plain; charset=utf-8");
    assert!(page.headers()["content-security-policy"].to_str().unwrap().contains("sandbox"));
    let forced = call(&app, &client, Method::GET, "/api/files/content?path=notes.md&download=true", vec![]).await;
    assert!(forced.headers()["content-disposition"].to_str().unwrap().starts_with("attachment;"));

    let refused = call(&app, &client, Method::DELETE, "/api/files?path=site", vec![]).await;
    assert_eq!(error_code(refused).await, (409, "not_empty".to_string()));
    let deleted = call(&app, &client, Method::DELETE, "/api/files?path=site&recursive=true", vec![]).await;
    assert_eq!(deleted.status(), 200);
    let deleted = call(&app, &client, Method::DELETE, "/api/files?path=notes.md", vec![]).await;
    assert_eq!(deleted.status(), 200);
    assert_eq!(std::fs::read_dir(workspace(&app, &user)).unwrap().count(), 0);
    let gone = call(&app, &client, Method::GET, "/api/files/content?path=notes.md", vec![]).await;
    assert_eq!(error_code(gone).await, (404, "not_found".to_string()));

    // An API token reaches them too.
    let token = app.create_token(&client, "files").await["token"].as_str().unwrap().to_string();
    let put = Client::new()
        .put(app.url("/api/files/content?path=from-ci.txt"))
        .bearer_auth(&token)
        .body("ci")
        .send()
        .await
        .unwrap();
    assert_eq!(put.status(), 201);
    let read =
        Client::new().get(app.url("/api/files/content?path=from-ci.txt")).bearer_auth(&token).send().await.unwrap();
    assert_eq!(read.text().await.unwrap(), "ci");
}

#[tokio::test]
async fn every_way_out_of_the_workspace_is_refused() {
    let app = local_app().await;
    let (client, user) = app.signed_up_user("escape@example.com").await;
    let ws = workspace(&app, &user);
    call(&app, &client, Method::GET, "/api/files", vec![]).await; // creates the workspace
    // The agent's own config sits beside the workspace; the data dir holds Roost's secrets.
    let state = ws.parent().unwrap().to_path_buf();
    std::fs::write(state.join("openclaw.json"), b"{\"gateway\":\"secret-token\"}").unwrap();
    std::os::unix::fs::symlink(&state, ws.join("up")).unwrap();
    std::os::unix::fs::symlink(app.dir.path().join("secret.key"), ws.join("key")).unwrap();

    let long_name = "a".repeat(256);
    let long_path = ["abcdefgh"; 120].join("%2F");
    let cases: Vec<(String, u16, &str)> = vec![
        ("..%2Fopenclaw.json".into(), 400, "bad_path"),
        ("a%2F..%2F..%2Fopenclaw.json".into(), 400, "bad_path"),
        ("%2Fetc%2Fpasswd".into(), 400, "bad_path"),
        ("a%00b".into(), 400, "bad_path"),
        ("..%5Copenclaw.json".into(), 400, "bad_path"),
        (long_name, 400, "bad_path"),
        (long_path, 400, "bad_path"),
        ("up%2Fopenclaw.json".into(), 403, "outside"),
        ("key".into(), 403, "outside"),
    ];
    for (path, status, code) in &cases {
        let read = call(&app, &client, Method::GET, &format!("/api/files/content?path={path}"), vec![]).await;
        assert_eq!(error_code(read).await, (*status, code.to_string()), "GET {path}");
        let put = call(&app, &client, Method::PUT, &format!("/api/files/content?path={path}"), b"x".to_vec()).await;
        assert_eq!(error_code(put).await, (*status, code.to_string()), "PUT {path}");
    }
    for path in ["..", "up", "%2F"] {
        let list = call(&app, &client, Method::GET, &format!("/api/files?path={path}"), vec![]).await;
        assert!(matches!(error_code(list).await.0, 400 | 403), "list {path}");
    }
    let delete = call(&app, &client, Method::DELETE, "/api/files?path=up%2Fopenclaw.json", vec![]).await;
    assert_eq!(error_code(delete).await, (403, "outside".to_string()));
    assert_eq!(std::fs::read(state.join("openclaw.json")).unwrap(), b"{\"gateway\":\"secret-token\"}");
    assert!(app.dir.path().join("secret.key").exists());
}

#[tokio::test]
async fn an_oversize_upload_is_refused_and_nothing_is_stored() {
    let app = local_app().await;
    let (client, user) = app.signed_up_user("big@example.com").await;
    let limit = provisioner::files::MAX_UPLOAD_BYTES as usize;

    // Declared too large: refused before a byte is read.
    let declared = call(&app, &client, Method::PUT, "/api/files/content?path=big.bin", vec![0; limit + 1]).await;
    assert_eq!(error_code(declared).await, (413, "too_large".to_string()));

    // Streamed without a length: refused once it passes the limit.
    let chunk = bytes::Bytes::from(vec![0u8; 1024 * 1024]);
    let chunks = (0..=limit / chunk.len()).map(move |_| Ok::<_, std::io::Error>(chunk.clone()));
    let body = reqwest::Body::wrap_stream(futures_util::stream::iter(chunks));
    let streamed = client
        .put(app.url("/api/files/content?path=big.bin"))
        .header("Origin", &app.origin)
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(error_code(streamed).await, (413, "too_large".to_string()));
    let left = std::fs::read_dir(workspace(&app, &user)).map_or(0, |d| d.count());
    assert_eq!(left, 0, "nothing kept, not even a temporary file");

    // Exactly the limit is fine.
    let exact = call(&app, &client, Method::PUT, "/api/files/content?path=big.bin", vec![7; limit]).await;
    assert_eq!(exact.status(), 201);
    assert_eq!(std::fs::metadata(workspace(&app, &user).join("big.bin")).unwrap().len(), limit as u64);
}

#[tokio::test]
async fn one_user_never_reaches_anothers_files() {
    let app = local_app().await;
    let (alice, alice_id) = app.signed_up_user("alice@example.com").await;
    let (bob, bob_id) = app.signed_up_user("bob@example.com").await;
    let put = call(&app, &alice, Method::PUT, "/api/files/content?path=diary.md", b"alice only".to_vec()).await;
    assert_eq!(put.status(), 201);

    let listed: Value = call(&app, &bob, Method::GET, "/api/files", vec![]).await.json().await.unwrap();
    assert_eq!(listed["entries"], serde_json::json!([]), "bob sees his own, empty workspace");
    let read = call(&app, &bob, Method::GET, "/api/files/content?path=diary.md", vec![]).await;
    assert_eq!(error_code(read).await.0, 404);
    let across = format!("/api/files/content?path=..%2F..%2F..%2F{alice_id}%2Fstate%2Fworkspace%2Fdiary.md");
    let read = call(&app, &bob, Method::GET, &across, vec![]).await;
    assert_eq!(error_code(read).await.0, 400);
    let delete = call(&app, &bob, Method::DELETE, "/api/files?path=diary.md", vec![]).await;
    assert_eq!(error_code(delete).await.0, 404);
    assert_eq!(std::fs::read(workspace(&app, &alice_id).join("diary.md")).unwrap(), b"alice only");
    assert!(!workspace(&app, &bob_id).join("diary.md").exists());

    let anonymous = call(&app, &Client::new(), Method::GET, "/api/files/content?path=diary.md", vec![]).await;
    assert_eq!(error_code(anonymous).await.0, 401);
}
