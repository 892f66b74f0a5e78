//! Backups (issue 15 §5): `GET /api/export` → delete the machine → `POST /api/import` brings the
//! chats and files back; every tampered archive is refused and changes nothing; only the
//! signed-in user's own agent is touched. The simulated agent keeps OpenClaw's state layout
//! on disk, so these run the real archive code.

use std::io::Read;

use gateway::domain::UserId;
use provisioner::Provider;
use serde_json::{Value, json};

use crate::helpers::{TestApp, error_code};

async fn chatted(app: &TestApp, email: &str, message: &str) -> (String, String) {
    let (cookie, user_id) = app.signed_up_cookie(email).await;
    let mut ws = app.ws(&cookie, "").await;
    ws.ready().await;
    ws.chat("main", message).await;
    (cookie, user_id)
}

fn workspace_file(app: &TestApp, user_id: &str) -> std::path::PathBuf {
    app.state.machines.simulated().unwrap().state_dir(user_id).join("workspace/notes/plan.md")
}

pub async fn download(app: &TestApp, cookie: &str) -> Vec<u8> {
    let res = reqwest::Client::new().get(app.url("/api/export")).header("cookie", cookie).send().await.unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["content-type"], "application/gzip");
    assert!(res.headers()["content-disposition"].to_str().unwrap().starts_with("attachment; filename=\"roost-backup-"));
    res.bytes().await.unwrap().to_vec()
}

pub async fn upload(app: &TestApp, cookie: &str, archive: Vec<u8>) -> reqwest::Response {
    reqwest::Client::new()
        .post(app.url("/api/import?confirm=replace"))
        .header("Origin", &app.origin)
        .header("cookie", cookie)
        .header("content-type", "application/gzip")
        .body(archive)
        .send()
        .await
        .unwrap()
}

/// The newest history straight from the agent (not Roost's cache), once it runs again.
pub async fn fresh_history(app: &TestApp, cookie: &str) -> Value {
    let mut last = Value::Null;
    for _ in 0..200 {
        last = app.json_as(cookie, "/api/sessions/main/history").await;
        if last["stale"] == false {
            return last;
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    panic!("the agent never answered history: {last}");
}

pub fn entries(archive: &[u8]) -> Vec<(String, Vec<u8>)> {
    let mut tar = tar::Archive::new(flate2::read::GzDecoder::new(archive));
    tar.entries()
        .unwrap()
        .map(|e| {
            let mut e = e.unwrap();
            let mut data = Vec::new();
            e.read_to_end(&mut data).unwrap();
            (String::from_utf8(e.path_bytes().to_vec()).unwrap(), data)
        })
        .collect()
}

/// An archive's entries as a test edits them: path, kind, data.
type Entries = Vec<(String, Kind, Vec<u8>)>;

#[derive(Clone, Copy)]
enum Kind {
    File,
    Symlink,
}

/// Packs entries as given, raw names and all (`tar::Builder` itself refuses `..`).
fn pack(entries: &[(&str, Kind, &[u8])]) -> Vec<u8> {
    let mut tar = tar::Builder::new(flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast()));
    for (name, kind, data) in entries {
        let mut header = tar::Header::new_old();
        header.as_old_mut().name[..name.len()].copy_from_slice(name.as_bytes());
        header.set_size(data.len() as u64);
        header.set_mode(0o600);
        match kind {
            Kind::File => header.set_entry_type(tar::EntryType::Regular),
            Kind::Symlink => {
                header.set_entry_type(tar::EntryType::Symlink);
                header.set_link_name("/etc/passwd").unwrap();
            }
        }
        header.set_cksum();
        tar.append(&header, *data).unwrap();
    }
    tar.into_inner().unwrap().finish().unwrap()
}

#[tokio::test]
async fn a_backup_brings_back_the_chats_and_files_after_the_machine_is_deleted() {
    let app = TestApp::spawn().await;
    let (cookie, user_id) = chatted(&app, "backup@example.com", "remember the blue door").await;
    let file = workspace_file(&app, &user_id);
    std::fs::create_dir_all(file.parent().unwrap()).unwrap();
    std::fs::write(&file, "1. paint the door").unwrap();

    let archive = download(&app, &cookie).await;
    let listed = entries(&archive);
    assert_eq!(listed[0].0, "manifest.json", "the manifest comes first");
    let manifest: Value = serde_json::from_slice(&listed[0].1).unwrap();
    assert_eq!((manifest["format"].as_str(), manifest["version"].as_u64()), (Some("roost-agent-backup"), Some(1)));
    assert!(manifest["roost_version"].as_str().is_some_and(|v| !v.is_empty()));
    let paths: Vec<&str> = manifest["files"].as_array().unwrap().iter().map(|f| f["path"].as_str().unwrap()).collect();
    assert!(paths.contains(&"workspace/notes/plan.md"), "{paths:?}");
    assert!(paths.iter().any(|p| p.starts_with("agents/main/sessions/") && p.ends_with(".jsonl")), "{paths:?}");

    // Delete the machine and everything on it; a new one starts empty.
    let user = UserId::parse(&user_id).unwrap();
    app.state.machines.stop(&user).await.unwrap();
    app.state.machines.simulated().unwrap().destroy(&user_id).await.unwrap();
    assert!(!file.exists());
    app.state.machines.ensure_ready(&user).await.unwrap();
    assert_eq!(fresh_history(&app, &cookie).await["messages"].as_array().unwrap().len(), 0, "the new agent is empty");

    let res = upload(&app, &cookie, archive).await;
    assert_eq!(res.status(), 200);
    let restored: Value = res.json().await.unwrap();
    assert_eq!(restored["restored"]["files"], manifest["files"].as_array().unwrap().len());
    let history = fresh_history(&app, &cookie).await;
    assert_eq!(history["messages"][0]["text"], "remember the blue door", "{history}");
    assert_eq!(std::fs::read_to_string(&file).unwrap(), "1. paint the door");
}

#[tokio::test]
async fn every_tampered_backup_is_refused_and_nothing_changes() {
    let app = TestApp::spawn().await;
    let (cookie, user_id) = chatted(&app, "tamper@example.com", "keep this chat").await;
    let file = workspace_file(&app, &user_id);
    std::fs::create_dir_all(file.parent().unwrap()).unwrap();
    std::fs::write(&file, "mine").unwrap();
    let archive = download(&app, &cookie).await;
    let good = entries(&archive);
    let manifest = good[0].1.clone();
    let with = |changes: &dyn Fn(&mut Entries)| {
        let mut list: Entries = good.iter().map(|(p, d)| (p.clone(), Kind::File, d.clone())).collect();
        changes(&mut list);
        let borrowed: Vec<(&str, Kind, &[u8])> = list.iter().map(|(p, k, d)| (p.as_str(), *k, d.as_slice())).collect();
        pack(&borrowed)
    };
    let plan =
        |list: &Vec<(String, Kind, Vec<u8>)>| list.iter().position(|e| e.0 == "workspace/notes/plan.md").unwrap();
    let oversize = {
        let mut m: Value = serde_json::from_slice(&manifest).unwrap();
        m["files"][0]["size"] = json!(2u64 << 30);
        serde_json::to_vec(&m).unwrap()
    };
    let cases: Vec<(&str, Vec<u8>, u16, &str)> = vec![
        ("not gzip", b"PK\x03\x04 not a backup".to_vec(), 422, "not_gzip"),
        (
            "checksum changed",
            with(&|l| {
                let i = plan(l);
                l[i].2 = b"MINE".to_vec()
            }),
            422,
            "checksum_mismatch",
        ),
        (
            "extra file",
            with(&|l| l.push(("workspace/evil.sh".into(), Kind::File, b"rm -rf".to_vec()))),
            422,
            "file_extra",
        ),
        (
            "symlink",
            with(&|l| {
                let i = plan(l);
                l[i].1 = Kind::Symlink;
                l[i].2.clear()
            }),
            422,
            "not_a_regular_file",
        ),
        (
            "dot-dot path",
            with(&|l| l.push(("workspace/../../../escape".into(), Kind::File, b"x".to_vec()))),
            422,
            "bad_path",
        ),
        ("absolute path", with(&|l| l.push(("/tmp/roost-escape".into(), Kind::File, b"x".to_vec()))), 422, "bad_path"),
        (
            "missing file",
            with(&|l| {
                let i = plan(l);
                l.remove(i);
            }),
            422,
            "file_missing",
        ),
        ("oversize", with(&|l| l[0].2 = oversize.clone()), 422, "too_large"),
        (
            "no manifest",
            with(&|l| {
                l.remove(0);
            }),
            422,
            "no_manifest",
        ),
    ];
    for (name, archive, status, code) in cases {
        assert_eq!(error_code(upload(&app, &cookie, archive).await).await, (status, code.to_string()), "{name}");
        assert_eq!(std::fs::read_to_string(&file).unwrap(), "mine", "{name}: the workspace is untouched");
        assert!(app.state.machines.is_up(&UserId::parse(&user_id).unwrap()).await, "{name}: the agent was not stopped");
    }
    assert!(!std::path::Path::new("/tmp/roost-escape").exists());
    let history = fresh_history(&app, &cookie).await;
    assert_eq!(history["messages"][0]["text"], "keep this chat");
    assert_eq!(upload(&app, &cookie, archive).await.status(), 200, "the untampered backup is taken");
}

#[tokio::test]
async fn only_your_own_agent_is_backed_up_or_restored() {
    let app = TestApp::spawn().await;
    let (alice, alice_id) = chatted(&app, "alice-backup@example.com", "alice's secret plan").await;
    let (bob, _) = chatted(&app, "bob-backup@example.com", "bob's chat").await;
    let bobs = download(&app, &bob).await;
    assert!(!crate::helpers::contains(&flate(&bobs), "alice's secret plan"), "a backup holds only its owner's chats");

    // Bob restoring his backup changes his agent only.
    assert_eq!(upload(&app, &bob, bobs.clone()).await.status(), 200);
    assert_eq!(fresh_history(&app, &alice).await["messages"][0]["text"], "alice's secret plan");
    assert!(app.state.machines.is_up(&UserId::parse(&alice_id).unwrap()).await, "alice's agent was not stopped");

    // Without a session: refused. With an API token: refused (a leaked token cannot overwrite).
    let anonymous = reqwest::Client::new()
        .post(app.url("/api/import?confirm=replace"))
        .header("Origin", &app.origin)
        .body(bobs.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), 401);
    assert_eq!(reqwest::Client::new().get(app.url("/api/export")).send().await.unwrap().status(), 401);
    let client = reqwest::Client::new();
    let token = {
        let res = client
            .post(app.url("/api/tokens"))
            .header("Origin", &app.origin)
            .header("cookie", &bob)
            .json(&json!({ "name": "ci" }))
            .send()
            .await
            .unwrap();
        res.json::<Value>().await.unwrap()["token"].as_str().unwrap().to_string()
    };
    let with_token = client
        .post(app.url("/api/import?confirm=replace"))
        .bearer_auth(&token)
        .body(bobs.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(error_code(with_token).await, (403, "session_required".into()));

    // Unconfirmed: refused before the upload is read.
    let unconfirmed = reqwest::Client::new()
        .post(app.url("/api/import"))
        .header("Origin", &app.origin)
        .header("cookie", &bob)
        .body(bobs)
        .send()
        .await
        .unwrap();
    assert_eq!(error_code(unconfirmed).await, (400, "confirm_replace".into()));
}

fn flate(archive: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(archive).read_to_end(&mut out).unwrap();
    out
}
