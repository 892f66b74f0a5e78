//! `GET /roost/export` and `PUT /roost/import`, in process: only with the machine's secret; the
//! archive holds none of the platform's secrets; a restore pauses OpenClaw (the supervisor's
//! stand-in records it), replaces the state keeping the machine's own parts, and resumes it; a
//! refused archive changes nothing and OpenClaw is never paused for it.

use std::io::{Read, Write};
use std::net::SocketAddr;
use std::time::Duration;

use roost_agent::supervisor::Stage;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::SECRET;
use crate::files::{Sidecar, sidecar, sidecar_obeying};

/// An agent's state as OpenClaw leaves it: platform keys in its config, a chat, a workspace
/// file, a bot token, a log.
fn fill(sidecar: &Sidecar) {
    let state = &sidecar.state;
    std::fs::create_dir_all(state.join("agents/main/sessions")).unwrap();
    std::fs::create_dir_all(state.join("workspace")).unwrap();
    std::fs::create_dir_all(state.join("logs")).unwrap();
    let config = json!({
        "gateway": { "port": 18789, "auth": { "mode": "token", "token": "gw-secret-token" } },
        "models": { "providers": { "roost": { "apiKey": "roost-provider-key" } } },
        "ui": { "theme": "dark" },
    });
    std::fs::write(state.join("openclaw.json"), config.to_string()).unwrap();
    std::fs::write(state.join("agents/main/sessions/a.jsonl"), "{\"text\":\"remember the red door\"}\n").unwrap();
    std::fs::write(state.join("workspace/plan.md"), "buy milk").unwrap();
    std::fs::write(state.join("logs/openclaw.log"), "a log line").unwrap();
    roost_agent::secret_files::write(&state.join("roost-secrets/telegram-a.token"), Some(b"bot-token-123")).unwrap();
}

/// One request on a fresh connection: status and body bytes. `length` overrides the
/// `content-length` header.
async fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    secret: Option<&str>,
    body: &[u8],
    length: Option<u64>,
) -> (u16, Vec<u8>) {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let secret = secret.map(|s| format!("x-roost-agent-secret: {s}\r\n")).unwrap_or_default();
    let head = format!(
        "{method} {path} HTTP/1.1\r\nhost: agent.internal:8080\r\n{secret}content-length: {}\r\nconnection: close\r\n\r\n",
        length.unwrap_or(body.len() as u64)
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    let _ = stream.write_all(body).await;
    let mut got = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(20), stream.read_to_end(&mut got)).await;
    let split = got.windows(4).position(|w| w == b"\r\n\r\n").expect("an answer");
    let head = String::from_utf8_lossy(&got[..split]).into_owned();
    let status = head.get(9..12).and_then(|s| s.parse().ok()).unwrap_or(0);
    (status, got[split + 4..].to_vec())
}

async fn export(sidecar: &Sidecar) -> Vec<u8> {
    let (status, body) = request(sidecar.addr, "GET", "/roost/export", Some(SECRET), b"", None).await;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    body
}

async fn import(sidecar: &Sidecar, archive: &[u8]) -> (u16, Value) {
    let (status, body) = request(sidecar.addr, "PUT", "/roost/import", Some(SECRET), archive, None).await;
    (status, serde_json::from_slice(&body).unwrap_or(Value::Null))
}

fn unpacked(archive: &[u8]) -> Vec<u8> {
    let mut plain = Vec::new();
    flate2::read::GzDecoder::new(archive).read_to_end(&mut plain).unwrap();
    plain
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle.as_bytes())
}

/// The archive with one file's bytes changed (same length): its checksum no longer matches.
fn tampered(archive: &[u8]) -> Vec<u8> {
    let mut plain = unpacked(archive);
    let at = plain.windows(8).position(|w| w == b"buy milk").unwrap();
    plain[at..at + 8].copy_from_slice(b"buy MILK");
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(&plain).unwrap();
    gz.finish().unwrap()
}

fn stages(sidecar: &Sidecar) -> Vec<Stage> {
    sidecar.stages.lock().unwrap().clone()
}

/// What is on the volume beside the state dir (scratch files must not stay).
fn beside_state(sidecar: &Sidecar) -> Vec<String> {
    std::fs::read_dir(sidecar.volume.path()).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into()).collect()
}

#[tokio::test]
async fn a_backup_is_restored_with_openclaw_paused_meanwhile_and_the_machines_own_parts_kept() {
    let sidecar = sidecar().await;
    fill(&sidecar);
    let archive = export(&sidecar).await;
    let plain = unpacked(&archive);
    assert!(plain.starts_with(b"manifest.json"), "the manifest comes first");
    assert!(contains(&plain, "remember the red door") && contains(&plain, "buy milk"));
    assert!(contains(&plain, "\"openclaw_version\": \"2026.1.1\""));
    for secret in ["gw-secret-token", "roost-provider-key", "bot-token-123", "a log line"] {
        assert!(!contains(&plain, secret), "{secret} is in the backup");
    }

    // The machine after: the file gone, a new one, its own new bot token and config keys.
    let state = &sidecar.state;
    std::fs::remove_file(state.join("workspace/plan.md")).unwrap();
    std::fs::write(state.join("workspace/stale.md"), "from after").unwrap();
    roost_agent::secret_files::write(&state.join("roost-secrets/telegram-a.token"), Some(b"new-bot")).unwrap();
    let config = json!({ "gateway": { "port": 18789, "auth": { "mode": "token", "token": "new-gw-token" } } });
    std::fs::write(state.join("openclaw.json"), config.to_string()).unwrap();

    let (status, restored) = import(&sidecar, &archive).await;
    assert_eq!(status, 200, "{restored}");
    assert_eq!(restored["files"], 3, "{restored}");
    assert_eq!(restored["openclaw_version"], "2026.1.1");
    assert_eq!(std::fs::read_to_string(state.join("workspace/plan.md")).unwrap(), "buy milk");
    assert!(!state.join("workspace/stale.md").exists(), "the state is replaced whole");
    assert_eq!(std::fs::read(state.join("roost-secrets/telegram-a.token")).unwrap(), b"new-bot");
    let config: Value = serde_json::from_slice(&std::fs::read(state.join("openclaw.json")).unwrap()).unwrap();
    assert_eq!(config["gateway"]["auth"]["token"], "new-gw-token", "the machine's platform keys stay");
    assert_eq!(config["ui"]["theme"], "dark", "the user's keys come back");
    assert_eq!(
        stages(&sidecar),
        [Stage::Starting { start: 1 }, Stage::Paused, Stage::Starting { start: 2 }],
        "OpenClaw was paused for the restore and started again"
    );
    assert_eq!(beside_state(&sidecar), ["openclaw"], "no scratch or staging dir is left");
}

#[tokio::test]
async fn without_the_secret_there_is_no_backup_and_no_restore() {
    let sidecar = sidecar().await;
    fill(&sidecar);
    let archive = export(&sidecar).await;
    std::fs::write(sidecar.state.join("workspace/plan.md"), "changed").unwrap();
    for secret in [None, Some("nope"), Some(&SECRET[..SECRET.len() - 1])] {
        let (status, body) = request(sidecar.addr, "GET", "/roost/export", secret, b"", None).await;
        assert_eq!(status, 401, "{secret:?}");
        assert!(!contains(&body, "milk") && !contains(&body, "changed"));
        let (status, _) = request(sidecar.addr, "PUT", "/roost/import", secret, &archive, None).await;
        assert_eq!(status, 401, "{secret:?}");
    }
    assert_eq!(std::fs::read_to_string(sidecar.state.join("workspace/plan.md")).unwrap(), "changed");
    assert_eq!(stages(&sidecar), [Stage::Starting { start: 1 }], "OpenClaw was never paused");
}

#[tokio::test]
async fn a_refused_archive_changes_nothing_and_openclaw_keeps_running() {
    let sidecar = sidecar().await;
    fill(&sidecar);
    let archive = export(&sidecar).await;
    std::fs::write(sidecar.state.join("workspace/plan.md"), "mine now").unwrap();
    let cases: Vec<(&str, Vec<u8>, u16, &str)> = vec![
        ("checksum", tampered(&archive), 422, "checksum_mismatch"),
        ("not gzip", b"PK\x03\x04 a zip".to_vec(), 422, "not_gzip"),
        ("truncated", archive[..archive.len() / 2].to_vec(), 422, "damaged"),
    ];
    for (name, body, status, code) in cases {
        let (got, answer) = import(&sidecar, &body).await;
        assert_eq!((got, answer["code"].as_str()), (status, Some(code)), "{name}: {answer}");
        let message = answer["error"].as_str().unwrap();
        assert!(message.ends_with('.') && !message.contains('/'), "{name}: a sentence, no path: {message}");
    }
    // Declared larger than any backup: refused before a byte is stored.
    let (status, body) = request(
        sidecar.addr,
        "PUT",
        "/roost/import",
        Some(SECRET),
        b"",
        Some(roost_agent::archive::MAX_ARCHIVE_BYTES + 1),
    )
    .await;
    assert_eq!(status, 413, "{}", String::from_utf8_lossy(&body));
    let (status, _) = request(sidecar.addr, "POST", "/roost/export", Some(SECRET), b"", None).await;
    assert_eq!(status, 405);

    assert_eq!(std::fs::read_to_string(sidecar.state.join("workspace/plan.md")).unwrap(), "mine now");
    assert_eq!(stages(&sidecar), [Stage::Starting { start: 1 }], "OpenClaw was never paused");
    assert_eq!(beside_state(&sidecar), ["openclaw"]);
}

#[tokio::test]
async fn a_restore_gives_up_unchanged_when_openclaw_does_not_stop() {
    let sidecar = sidecar_obeying(false).await;
    fill(&sidecar);
    let archive = export(&sidecar).await;
    std::fs::write(sidecar.state.join("workspace/plan.md"), "mine now").unwrap();
    let (status, answer) = import(&sidecar, &archive).await;
    assert_eq!((status, answer["code"].as_str()), (503, Some("not_paused")), "{answer}");
    assert_eq!(std::fs::read_to_string(sidecar.state.join("workspace/plan.md")).unwrap(), "mine now");
    assert_eq!(stages(&sidecar), [Stage::Starting { start: 1 }, Stage::Starting { start: 2 }], "resumed");
}
