//! The backup archive of an agent's state dir: a tar.gz whose first entry is `manifest.json`
//! (format version, Roost and OpenClaw versions, creation time, and every file's path, size and
//! SHA-256), then the files. Written as a stream, checked before anything is restored, restored
//! into a staging dir and swapped in whole.
//!
//! What is never in it: the platform's secret files ([`secret_files::DIR`]: bot tokens), the
//! logs, and the platform-owned config keys ([`PLATFORM_OWNED`] and the paths Roost writes next
//! to them). The gateway token and the LLM credential never are in the state dir at all: they
//! reach OpenClaw through its environment.
//!
//! Blocking (std, `tar`, `flate2`, `sha2`): run it off async workers. The local provider and the
//! Fly sidecar share it; the gateway uses [`verify`] on uploads.

use std::collections::{BTreeMap, HashSet};
use std::fs::File;
use std::io::{self, BufReader, Read, Seek, SeekFrom, Write};
use std::path::{Component, Path, PathBuf};

use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};

use crate::config::PLATFORM_OWNED;
use crate::secret_files;

/// The `format` every manifest names.
pub const FORMAT: &str = "roost-agent-backup";
/// The only manifest version this build writes and reads.
pub const VERSION: u64 = 1;
pub const MANIFEST: &str = "manifest.json";
/// OpenClaw's config file, under the state dir.
pub const CONFIG: &str = "openclaw.json";
/// The most file data one archive holds (1 GiB): an agent's transcripts and workspace are far
/// smaller; anything near this is not a backup Roost made.
pub const MAX_TOTAL_BYTES: u64 = 1 << 30;
/// The most files one archive holds.
pub const MAX_FILES: usize = 100_000;
/// The most bytes a stored (compressed) archive may be: its data plus tar overhead.
pub const MAX_ARCHIVE_BYTES: u64 = MAX_TOTAL_BYTES + (MAX_FILES as u64 + 16) * 1024 + MAX_MANIFEST_BYTES;
const MAX_MANIFEST_BYTES: u64 = 16 << 20;
const MAX_PATH_BYTES: usize = 1024;
/// Top-level entries of the state dir that are never exported and that a restore keeps as they
/// are: the platform's secrets, and logs.
const NOT_EXPORTED: &[&str] = &[secret_files::DIR, "logs"];
/// Config paths Roost writes beside [`PLATFORM_OWNED`]: where secret files and plugins are, and
/// the log file. They name this machine's paths, so they belong to it, not to the backup.
const PLATFORM_WRITTEN: &[&[&str]] = &[
    &["secrets"],
    &["plugins", "load"],
    &["plugins", "entries", "telegram"],
    &["plugins", "entries", "discord"],
    &["logging"],
];

/// What the caller knows about the machine, written into the manifest.
#[derive(Debug, Clone)]
pub struct Versions {
    pub roost: String,
    pub openclaw: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileEntry {
    pub path: String,
    pub size: u64,
    pub sha256: String,
}

#[derive(Debug, Clone)]
pub struct Manifest {
    pub roost_version: String,
    pub openclaw_version: Option<String>,
    pub created_unix: u64,
    pub files: Vec<FileEntry>,
}

impl Manifest {
    pub fn total_bytes(&self) -> u64 {
        self.files.iter().map(|f| f.size).sum()
    }

    /// What a restore of this archive brought back, in a few numbers.
    pub fn summary(&self) -> Restored {
        Restored {
            files: self.files.len() as u64,
            bytes: self.total_bytes(),
            roost_version: short(&self.roost_version),
            openclaw_version: self.openclaw_version.as_deref().map(short),
            created_unix: self.created_unix,
        }
    }

    fn to_json(&self) -> Vec<u8> {
        let files: Vec<Value> =
            self.files.iter().map(|f| json!({ "path": f.path, "size": f.size, "sha256": f.sha256 })).collect();
        let manifest = json!({
            "format": FORMAT, "version": VERSION, "roost_version": self.roost_version,
            "openclaw_version": self.openclaw_version, "created_unix": self.created_unix, "files": files,
        });
        serde_json::to_vec_pretty(&manifest).expect("a JSON value serialises")
    }

    fn parse(bytes: &[u8]) -> Result<Self, Refusal> {
        let value: Value = serde_json::from_slice(bytes).map_err(|_| Refusal::BadManifest)?;
        if value["format"] != FORMAT {
            return Err(Refusal::BadManifest);
        }
        if value["version"].as_u64() != Some(VERSION) {
            return Err(Refusal::UnknownVersion);
        }
        let files = value["files"].as_array().ok_or(Refusal::BadManifest)?;
        if files.len() > MAX_FILES {
            return Err(Refusal::TooLarge);
        }
        let mut seen = HashSet::new();
        let mut parsed = Vec::with_capacity(files.len());
        let mut total: u64 = 0;
        for file in files {
            let (Some(path), Some(size), Some(sha256)) =
                (file["path"].as_str(), file["size"].as_u64(), file["sha256"].as_str())
            else {
                return Err(Refusal::BadManifest);
            };
            check_path(path.as_bytes())?;
            if path == MANIFEST || !seen.insert(path.to_string()) {
                return Err(Refusal::BadManifest);
            }
            if sha256.len() != 64 || !sha256.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)) {
                return Err(Refusal::BadManifest);
            }
            total = total.saturating_add(size);
            if total > MAX_TOTAL_BYTES {
                return Err(Refusal::TooLarge);
            }
            parsed.push(FileEntry { path: path.to_string(), size, sha256: sha256.to_string() });
        }
        Ok(Self {
            roost_version: value["roost_version"].as_str().unwrap_or_default().to_string(),
            openclaw_version: value["openclaw_version"].as_str().map(str::to_string),
            created_unix: value["created_unix"].as_u64().unwrap_or(0),
            files: parsed,
        })
    }
}

/// What a restore brought back: the user is shown it, and the Fly sidecar answers it as JSON
/// (the whole manifest stays on the machine).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Restored {
    pub files: u64,
    pub bytes: u64,
    pub roost_version: String,
    pub openclaw_version: Option<String>,
    pub created_unix: u64,
}

impl Restored {
    pub fn to_json(&self) -> Value {
        json!({
            "files": self.files, "bytes": self.bytes, "roost_version": self.roost_version,
            "openclaw_version": self.openclaw_version, "created_unix": self.created_unix,
        })
    }

    /// `None`: not a summary (the numbers are bounded as a real archive's are).
    pub fn from_json(value: &Value) -> Option<Self> {
        let files = value["files"].as_u64().filter(|n| *n <= MAX_FILES as u64)?;
        let bytes = value["bytes"].as_u64().filter(|n| *n <= MAX_TOTAL_BYTES)?;
        let roost_version = value["roost_version"].as_str().filter(|v| v.chars().count() <= 64)?.to_string();
        let openclaw_version = match &value["openclaw_version"] {
            Value::Null => None,
            Value::String(v) if v.chars().count() <= 64 => Some(v.clone()),
            _ => return None,
        };
        Some(Self { files, bytes, roost_version, openclaw_version, created_unix: value["created_unix"].as_u64()? })
    }
}

/// A version as shown: at most 64 characters (a manifest's own are any length).
fn short(version: &str) -> String {
    version.chars().take(64).collect()
}

/// Why an archive is refused, each in a sentence the user reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    NotGzip,
    NotTar,
    NoManifest,
    BadManifest,
    UnknownVersion,
    TooLarge,
    NotRegularFile,
    BadPath,
    Mismatch,
    Missing,
    Extra,
}

impl Refusal {
    pub fn message(self) -> &'static str {
        match self {
            Self::NotGzip => "This file is not a Roost backup: it is not a gzip-compressed archive.",
            Self::NotTar => "This backup is damaged: its archive cannot be read to the end.",
            Self::NoManifest => "This file is not a Roost backup: it does not start with a manifest.",
            Self::BadManifest => "This backup's manifest cannot be read.",
            Self::UnknownVersion => "This backup was made by a newer or unknown version of Roost.",
            Self::TooLarge => "This backup is larger than a Roost backup can be (1 GiB of files).",
            Self::NotRegularFile => "This backup holds a link or a special file; only files and folders are restored.",
            Self::BadPath => "This backup holds a path outside the agent's folder; nothing was restored.",
            Self::Mismatch => "A file in this backup does not match its checksum; the backup was changed or damaged.",
            Self::Missing => "This backup is incomplete: a file its manifest lists is missing.",
            Self::Extra => "This backup holds a file its manifest does not list.",
        }
    }

    pub const ALL: [Refusal; 11] = [
        Self::NotGzip,
        Self::NotTar,
        Self::NoManifest,
        Self::BadManifest,
        Self::UnknownVersion,
        Self::TooLarge,
        Self::NotRegularFile,
        Self::BadPath,
        Self::Mismatch,
        Self::Missing,
        Self::Extra,
    ];

    /// The refusal a [`Self::code`] names (the Fly sidecar answers codes).
    pub fn from_code(code: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|r| r.code() == code)
    }

    /// A stable name for logs and API error codes.
    pub fn code(self) -> &'static str {
        match self {
            Self::NotGzip => "not_gzip",
            Self::NotTar => "damaged",
            Self::NoManifest => "no_manifest",
            Self::BadManifest => "bad_manifest",
            Self::UnknownVersion => "unknown_version",
            Self::TooLarge => "too_large",
            Self::NotRegularFile => "not_a_regular_file",
            Self::BadPath => "bad_path",
            Self::Mismatch => "checksum_mismatch",
            Self::Missing => "file_missing",
            Self::Extra => "file_extra",
        }
    }
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.message())
    }
}

/// A restore that did not happen: the archive was refused, or the disk failed.
#[derive(Debug)]
pub enum RestoreError {
    Refused(Refusal),
    Io(io::Error),
}

impl From<io::Error> for RestoreError {
    fn from(e: io::Error) -> Self {
        Self::Io(e)
    }
}

impl From<Refusal> for RestoreError {
    fn from(r: Refusal) -> Self {
        Self::Refused(r)
    }
}

/// A relative path of normal components: not empty, not absolute, no `.`/`..`, no NUL or
/// backslash, valid UTF-8, bounded. Nothing else can name a file outside the restore dir.
pub fn check_path(raw: &[u8]) -> Result<&str, Refusal> {
    let path = std::str::from_utf8(raw).map_err(|_| Refusal::BadPath)?;
    let path = path.strip_suffix('/').unwrap_or(path);
    let fine = !path.is_empty()
        && path.len() <= MAX_PATH_BYTES
        && !path.starts_with('/')
        && !path.bytes().any(|b| b == 0 || b == b'\\')
        && path.split('/').all(|part| !part.is_empty() && part != "." && part != "..")
        && Path::new(path).components().all(|c| matches!(c, Component::Normal(_)));
    if fine { Ok(path) } else { Err(Refusal::BadPath) }
}

/// Writes the archive of `state_dir` to `out` (gzip, manifest first) and returns its manifest.
/// The files are first copied once into an unnamed temporary file in `scratch` while they are
/// hashed, so the manifest matches what follows even while the agent keeps writing.
pub fn export(state_dir: &Path, scratch: &Path, versions: &Versions, out: impl Write) -> io::Result<Manifest> {
    let files = list(state_dir)?;
    let mut body = tar::Builder::new(tempfile::tempfile_in(scratch)?);
    let mut entries = Vec::with_capacity(files.len());
    let mut total: u64 = 0;
    for relative in files {
        let path_text = relative.to_string_lossy().into_owned();
        let data = if path_text == CONFIG { Some(exported_config(&state_dir.join(CONFIG))?) } else { None };
        let (size, sha256) = match data {
            Some(data) => {
                append(&mut body, &path_text, data.len() as u64, &mut data.as_slice())?;
                (data.len() as u64, hex::encode(Sha256::digest(&data)))
            }
            None => {
                let file = match File::open(state_dir.join(&relative)) {
                    Ok(file) => file,
                    // Gone since the listing (a temporary file): it is not in the backup.
                    Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                    Err(e) => return Err(e),
                };
                let size = file.metadata()?.len();
                let mut reader = Hashing::new(file.take(size));
                append(&mut body, &path_text, size, &mut reader)?;
                if reader.count != size {
                    return Err(io::Error::other("a file shrank while it was being backed up"));
                }
                (size, hex::encode(reader.hasher.finalize()))
            }
        };
        total += size;
        if total > MAX_TOTAL_BYTES {
            return Err(io::Error::other("the agent's files are larger than a backup can be (1 GiB)"));
        }
        entries.push(FileEntry { path: path_text, size, sha256 });
    }
    let mut body = body.into_inner()?;
    let created_unix =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
    let manifest = Manifest {
        roost_version: versions.roost.clone(),
        openclaw_version: versions.openclaw.clone(),
        created_unix,
        files: entries,
    };
    // The body ends with tar's end marker (two zero blocks): copy all but it after the manifest.
    let length = body.seek(SeekFrom::End(0))?.saturating_sub(1024);
    body.seek(SeekFrom::Start(0))?;
    let mut tar = tar::Builder::new(flate2::write::GzEncoder::new(out, flate2::Compression::default()));
    let text = manifest.to_json();
    append(&mut tar, MANIFEST, text.len() as u64, &mut text.as_slice())?;
    io::copy(&mut (&mut body).take(length), tar.get_mut())?;
    tar.into_inner()?.finish()?.flush()?;
    Ok(manifest)
}

fn append<W: Write>(builder: &mut tar::Builder<W>, path: &str, size: u64, data: &mut impl Read) -> io::Result<()> {
    let mut header = tar::Header::new_gnu();
    header.set_entry_type(tar::EntryType::Regular);
    header.set_size(size);
    header.set_mode(0o600);
    header.set_mtime(0);
    builder.append_data(&mut header, path, data)
}

/// Every regular file under `state_dir` that is exported, relative, sorted. Links and special
/// files are skipped, never followed.
fn list(state_dir: &Path) -> io::Result<Vec<PathBuf>> {
    let mut found = Vec::new();
    let mut pending = vec![PathBuf::new()];
    while let Some(dir) = pending.pop() {
        for entry in std::fs::read_dir(state_dir.join(&dir))? {
            let entry = entry?;
            let relative = dir.join(entry.file_name());
            if dir.as_os_str().is_empty() && NOT_EXPORTED.iter().any(|n| entry.file_name() == *n) {
                continue;
            }
            let kind = entry.file_type()?;
            if kind.is_dir() {
                pending.push(relative);
            } else if kind.is_file() && check_path(relative.as_os_str().as_encoded_bytes()).is_ok() {
                found.push(relative);
                if found.len() > MAX_FILES {
                    return Err(io::Error::other("the agent has more files than a backup can hold"));
                }
            }
        }
    }
    found.sort();
    Ok(found)
}

/// The config without the platform's keys: what the user chose, and nothing that names this
/// machine or lets anyone in.
fn exported_config(path: &Path) -> io::Result<Vec<u8>> {
    let mut config: Value = serde_json::from_slice(&std::fs::read(path)?).unwrap_or(Value::Object(Map::new()));
    for owned in platform_paths() {
        remove(&mut config, owned);
    }
    Ok(serde_json::to_vec_pretty(&config).expect("a JSON value serialises"))
}

use crate::config::remove;

fn platform_paths() -> impl Iterator<Item = &'static [&'static str]> {
    PLATFORM_OWNED.iter().map(|(path, _)| *path).chain(PLATFORM_WRITTEN.iter().copied())
}

fn get<'a>(value: &'a Value, path: &[&str]) -> Option<&'a Value> {
    path.iter().try_fold(value, |at, key| at.get(*key))
}

fn set(value: &mut Value, path: &[&str], new: Value) {
    let Some((last, parents)) = path.split_last() else { return };
    let mut at = value;
    for key in parents {
        if !at.get(*key).is_some_and(Value::is_object) {
            at[*key] = Value::Object(Map::new());
        }
        at = &mut at[*key];
    }
    at[*last] = new;
}

/// Checks the archive in `file` from its start: gzip and tar well formed, the manifest first and
/// of this version, only regular files (and folders) at relative paths, every file's size and
/// SHA-256 as listed, none missing or extra. Reads it whole; writes nothing.
pub fn verify(file: &mut File) -> Result<Manifest, RestoreError> {
    file.seek(SeekFrom::Start(0))?;
    walk(file, |_, _| Ok(None))
}

/// Checks the archive as [`verify`] does and, only when all of it passed, replaces the agent's
/// state in `state_dir` with it, keeping the platform's own parts of the current state (its
/// secret files and logs, and the platform-owned config keys). The agent must be stopped. A
/// refused archive or a failed write leaves `state_dir` as it was.
pub fn restore(file: &mut File, state_dir: &Path) -> Result<Manifest, RestoreError> {
    file.seek(SeekFrom::Start(0))?;
    let name = state_dir.file_name().ok_or_else(|| io::Error::other("the state dir has no name"))?;
    let parent = state_dir.parent().ok_or_else(|| io::Error::other("the state dir has no parent"))?;
    let staging = parent.join(format!(".{}.restoring", name.to_string_lossy()));
    let previous = parent.join(format!(".{}.previous", name.to_string_lossy()));
    for leftover in [&staging, &previous] {
        remove_dir(leftover)?;
    }
    std::fs::create_dir(&staging)?;
    let unpacked = walk(file, |path, _| {
        let target = staging.join(path);
        if let Some(dir) = target.parent() {
            std::fs::create_dir_all(dir)?;
        }
        Ok(Some(std::fs::OpenOptions::new().write(true).create_new(true).open(target)?))
    })
    .and_then(|manifest| {
        keep_platform_parts(state_dir, &staging)?;
        Ok(manifest)
    });
    let manifest = match unpacked {
        Ok(manifest) => manifest,
        Err(e) => {
            let _ = remove_dir(&staging);
            return Err(e);
        }
    };
    if state_dir.exists() {
        std::fs::rename(state_dir, &previous)?;
    }
    if let Err(e) = std::fs::rename(&staging, state_dir) {
        let _ = std::fs::rename(&previous, state_dir);
        return Err(e.into());
    }
    remove_dir(&previous)?;
    Ok(manifest)
}

/// Moves the current state's secret files and logs into the restored state, and lays the
/// current config's platform-owned keys over the restored config (which never had any).
fn keep_platform_parts(current: &Path, staging: &Path) -> io::Result<()> {
    for kept in NOT_EXPORTED {
        let from = current.join(kept);
        if from.exists() {
            remove_dir(&staging.join(kept))?;
            let _ = std::fs::remove_file(staging.join(kept));
            copy_dir(&from, &staging.join(kept))?;
        }
    }
    let restored_path = staging.join(CONFIG);
    let mut restored: Value = match std::fs::read(&restored_path) {
        Ok(bytes) => serde_json::from_slice(&bytes).unwrap_or(Value::Object(Map::new())),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Value::Object(Map::new()),
        Err(e) => return Err(e),
    };
    if !restored.is_object() {
        restored = Value::Object(Map::new());
    }
    let current: Value = std::fs::read(current.join(CONFIG))
        .ok()
        .and_then(|bytes| serde_json::from_slice(&bytes).ok())
        .unwrap_or(Value::Null);
    for path in platform_paths() {
        remove(&mut restored, path);
        if let Some(value) = get(&current, path) {
            set(&mut restored, path, value.clone());
        }
    }
    let _ = std::fs::remove_file(&restored_path);
    std::fs::write(&restored_path, serde_json::to_vec_pretty(&restored).expect("a JSON value serialises"))
}

/// Copies a directory of the platform's own files (a few small ones), keeping their modes.
fn copy_dir(from: &Path, to: &Path) -> io::Result<()> {
    std::fs::create_dir_all(to)?;
    std::fs::set_permissions(to, std::fs::metadata(from)?.permissions())?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let kind = entry.file_type()?;
        if kind.is_dir() {
            copy_dir(&entry.path(), &to.join(entry.file_name()))?;
        } else if kind.is_file() {
            std::fs::copy(entry.path(), to.join(entry.file_name()))?;
        }
    }
    Ok(())
}

fn remove_dir(path: &Path) -> io::Result<()> {
    match std::fs::remove_dir_all(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

/// Reads the archive once, checking everything; `sink` gives where each file's data goes (none:
/// only checked). Fails on the first problem.
fn walk(
    file: &mut File,
    mut sink: impl FnMut(&str, u64) -> io::Result<Option<File>>,
) -> Result<Manifest, RestoreError> {
    let mut magic = [0u8; 2];
    if file.read_exact(&mut magic).is_err() || magic != [0x1f, 0x8b] {
        return Err(Refusal::NotGzip.into());
    }
    file.seek(SeekFrom::Start(0))?;
    let gz = flate2::read::GzDecoder::new(BufReader::new(&mut *file));
    let mut archive = tar::Archive::new(gz);
    let damaged = |_| RestoreError::Refused(Refusal::NotTar);
    let mut entries = archive.entries().map_err(damaged)?;
    let mut first = match entries.next() {
        Some(Ok(entry)) => entry,
        Some(Err(_)) => return Err(Refusal::NotTar.into()),
        None => return Err(Refusal::NoManifest.into()),
    };
    if first.header().entry_type() != tar::EntryType::Regular || &*first.path_bytes() != MANIFEST.as_bytes() {
        return Err(Refusal::NoManifest.into());
    }
    if first.size() > MAX_MANIFEST_BYTES {
        return Err(Refusal::TooLarge.into());
    }
    let mut text = Vec::new();
    (&mut first).take(MAX_MANIFEST_BYTES).read_to_end(&mut text).map_err(damaged)?;
    let manifest = Manifest::parse(&text)?;
    let listed: BTreeMap<&str, &FileEntry> = manifest.files.iter().map(|f| (f.path.as_str(), f)).collect();
    let mut seen = HashSet::new();
    for entry in entries {
        let mut entry = entry.map_err(damaged)?;
        let kind = entry.header().entry_type();
        let raw_path = entry.path_bytes().into_owned();
        let path = check_path(&raw_path)?;
        if kind == tar::EntryType::Directory {
            continue;
        }
        if kind != tar::EntryType::Regular {
            return Err(Refusal::NotRegularFile.into());
        }
        let Some(expected) = listed.get(path) else { return Err(Refusal::Extra.into()) };
        if !seen.insert(path.to_string()) || entry.size() != expected.size {
            return Err(Refusal::Mismatch.into());
        }
        let mut out = sink(path, expected.size)?;
        let mut hashing = Hashing::new((&mut entry).take(expected.size));
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = hashing.read(&mut buf).map_err(damaged)?;
            if n == 0 {
                break;
            }
            if let Some(out) = out.as_mut() {
                out.write_all(&buf[..n])?;
            }
        }
        if hashing.count != expected.size || hex::encode(hashing.hasher.finalize()) != expected.sha256 {
            return Err(Refusal::Mismatch.into());
        }
        if let Some(out) = out {
            out.sync_all()?;
        }
    }
    if seen.len() != listed.len() {
        return Err(Refusal::Missing.into());
    }
    // The gzip stream must end cleanly too (its CRC is checked on the last read).
    let mut rest = archive.into_inner();
    io::copy(&mut rest, &mut io::sink()).map_err(damaged)?;
    Ok(manifest)
}

struct Hashing<R> {
    inner: R,
    hasher: Sha256,
    count: u64,
}

impl<R> Hashing<R> {
    fn new(inner: R) -> Self {
        Self { inner, hasher: Sha256::new(), count: 0 }
    }
}

impl<R: Read> Read for Hashing<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        self.count += n as u64;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn versions() -> Versions {
        Versions { roost: "0.1.0".into(), openclaw: Some("2026.1.1".into()) }
    }

    /// A state dir as an agent leaves it: config with platform keys, a transcript, a workspace
    /// file, a bot token, a log, and a link that must not be followed.
    fn agent_state(root: &Path) -> PathBuf {
        let state = root.join("state");
        std::fs::create_dir_all(state.join("agents/main/sessions")).unwrap();
        std::fs::create_dir_all(state.join("workspace/notes")).unwrap();
        std::fs::create_dir_all(state.join("logs")).unwrap();
        let config = json!({
            "gateway": { "port": 4100, "auth": { "mode": "token", "token": "gw-secret-token" } },
            "models": { "providers": { "roost": { "apiKey": "roost-provider-key" } } },
            "agents": { "defaults": { "model": { "primary": "roost/m" }, "workspace": "~/w" } },
            "ui": { "theme": "dark" },
        });
        std::fs::write(state.join(CONFIG), config.to_string()).unwrap();
        std::fs::write(state.join("agents/main/sessions/abc.jsonl"), "{\"role\":\"user\",\"text\":\"hi\"}\n").unwrap();
        std::fs::write(state.join("workspace/notes/todo.md"), "buy milk").unwrap();
        std::fs::write(state.join("logs/openclaw.log"), "log line").unwrap();
        secret_files::write(&secret_files::dir(&state).join("telegram-a.token"), Some(b"bot-token-123")).unwrap();
        std::os::unix::fs::symlink("/etc/passwd", state.join("workspace/passwd")).unwrap();
        state
    }

    fn exported(state: &Path, scratch: &Path) -> Vec<u8> {
        let mut out = Vec::new();
        export(state, scratch, &versions(), &mut out).unwrap();
        out
    }

    fn file_with(bytes: &[u8]) -> File {
        let mut file = tempfile::tempfile().unwrap();
        file.write_all(bytes).unwrap();
        file
    }

    fn unpack(archive: &[u8]) -> Vec<(String, tar::EntryType, Vec<u8>)> {
        let mut tar = tar::Archive::new(flate2::read::GzDecoder::new(archive));
        tar.entries()
            .unwrap()
            .map(|e| {
                let mut e = e.unwrap();
                let mut data = Vec::new();
                e.read_to_end(&mut data).unwrap();
                (String::from_utf8(e.path_bytes().to_vec()).unwrap(), e.header().entry_type(), data)
            })
            .collect()
    }

    /// Writes entries exactly as given (raw names: `tar::Builder` itself refuses `..`).
    fn pack(entries: &[(&[u8], tar::EntryType, &[u8])]) -> Vec<u8> {
        let mut tar = tar::Builder::new(flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast()));
        for (name, kind, data) in entries {
            let mut header = tar::Header::new_old();
            header.as_old_mut().name[..name.len()].copy_from_slice(name);
            header.set_entry_type(*kind);
            header.set_size(data.len() as u64);
            header.set_mode(0o600);
            if kind.is_symlink() || kind.is_hard_link() {
                header.set_link_name("/etc/passwd").unwrap();
            }
            header.set_cksum();
            tar.append(&header, *data).unwrap();
        }
        tar.into_inner().unwrap().finish().unwrap()
    }

    fn manifest_for(files: &[(&str, &[u8])]) -> Vec<u8> {
        let files = files
            .iter()
            .map(|(p, d)| FileEntry {
                path: p.to_string(),
                size: d.len() as u64,
                sha256: hex::encode(Sha256::digest(d)),
            })
            .collect();
        Manifest { roost_version: "0.1.0".into(), openclaw_version: None, created_unix: 1, files }.to_json()
    }

    #[test]
    fn the_archive_starts_with_its_manifest_and_holds_no_platform_secret() {
        let root = tempfile::tempdir().unwrap();
        let state = agent_state(root.path());
        let archive = exported(&state, root.path());
        let entries = unpack(&archive);
        assert_eq!(entries[0].0, MANIFEST);
        let names: Vec<&str> = entries.iter().map(|e| e.0.as_str()).collect();
        assert_eq!(
            names,
            [MANIFEST, "agents/main/sessions/abc.jsonl", CONFIG, "workspace/notes/todo.md"],
            "no secret files, no logs, no links"
        );
        let everything: Vec<u8> = entries.iter().flat_map(|e| e.2.clone()).collect();
        let text = String::from_utf8_lossy(&everything);
        for secret in ["gw-secret-token", "roost-provider-key", "bot-token-123", "log line", "root:"] {
            assert!(!text.contains(secret), "{secret} is in the archive");
        }
        let config: Value = serde_json::from_slice(&entries[2].2).unwrap();
        assert_eq!(config["ui"]["theme"], "dark", "the user's own keys are kept");
        assert_eq!(config["agents"]["defaults"]["workspace"], "~/w");
        let manifest: Value = serde_json::from_slice(&entries[0].2).unwrap();
        assert_eq!(manifest["format"], FORMAT);
        assert_eq!(manifest["version"], VERSION);
        assert_eq!(manifest["openclaw_version"], "2026.1.1");
        assert_eq!(manifest["files"][2]["sha256"].as_str().unwrap(), hex::encode(Sha256::digest(&entries[3].2)));
    }

    #[test]
    fn a_restore_brings_back_the_files_and_keeps_the_machines_own_parts() {
        let root = tempfile::tempdir().unwrap();
        let state = agent_state(root.path());
        let archive = exported(&state, root.path());
        // A fresh machine: new platform config and its own bot token; nothing of the user's.
        let other = tempfile::tempdir().unwrap();
        let fresh = other.path().join("state");
        std::fs::create_dir_all(&fresh).unwrap();
        let platform =
            json!({ "gateway": { "port": 5200, "auth": { "mode": "token" } }, "logging": { "file": "/new" } });
        std::fs::write(fresh.join(CONFIG), platform.to_string()).unwrap();
        std::fs::write(fresh.join("stale.txt"), "from before").unwrap();
        secret_files::write(&secret_files::dir(&fresh).join("discord-b.token"), Some(b"new-bot")).unwrap();
        let manifest = restore(&mut file_with(&archive), &fresh).unwrap();
        assert_eq!(manifest.files.len(), 3);
        assert_eq!(std::fs::read_to_string(fresh.join("workspace/notes/todo.md")).unwrap(), "buy milk");
        assert!(std::fs::read_to_string(fresh.join("agents/main/sessions/abc.jsonl")).unwrap().contains("hi"));
        assert!(!fresh.join("stale.txt").exists(), "the state is replaced whole");
        assert_eq!(std::fs::read(secret_files::dir(&fresh).join("discord-b.token")).unwrap(), b"new-bot");
        assert!(!secret_files::dir(&fresh).join("telegram-a.token").exists());
        let config: Value = serde_json::from_slice(&std::fs::read(fresh.join(CONFIG)).unwrap()).unwrap();
        assert_eq!(config["gateway"]["port"], 5200, "the machine's platform keys stay");
        assert_eq!(config["logging"]["file"], "/new");
        assert_eq!(config["ui"]["theme"], "dark", "the user's keys come back");
        assert!(config["models"]["providers"].get("roost").is_none());
        let leftovers: Vec<_> = std::fs::read_dir(other.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(leftovers, ["state"], "no staging dir is left behind");
    }

    #[test]
    fn every_tampered_archive_is_refused_and_changes_nothing() {
        use tar::EntryType::{Directory, Link, Regular, Symlink};
        let good: &[u8] = b"hello";
        let manifest = manifest_for(&[("workspace/a.txt", good)]);
        let m = manifest.as_slice();
        let cases: Vec<(&str, Vec<u8>, Refusal)> = vec![
            ("not gzip", b"PK\x03\x04 a zip file".to_vec(), Refusal::NotGzip),
            ("truncated", pack(&[(b"manifest.json", Regular, m), (b"workspace/a.txt", Regular, good)])[..40].to_vec(), Refusal::NotTar),
            ("no manifest", pack(&[(b"workspace/a.txt", Regular, good)]), Refusal::NoManifest),
            ("checksum", pack(&[(b"manifest.json", Regular, m), (b"workspace/a.txt", Regular, b"hellO")]), Refusal::Mismatch),
            (
                "extra file",
                pack(&[(b"manifest.json", Regular, m), (b"workspace/a.txt", Regular, good), (b"b", Regular, b"x")]),
                Refusal::Extra,
            ),
            ("missing file", pack(&[(b"manifest.json", Regular, m)]), Refusal::Missing),
            ("symlink", pack(&[(b"manifest.json", Regular, m), (b"workspace/a.txt", Symlink, b"")]), Refusal::NotRegularFile),
            ("hardlink", pack(&[(b"manifest.json", Regular, m), (b"workspace/a.txt", Link, b"")]), Refusal::NotRegularFile),
            ("dot-dot", pack(&[(b"manifest.json", Regular, m), (b"workspace/../../a.txt", Regular, good)]), Refusal::BadPath),
            ("absolute", pack(&[(b"manifest.json", Regular, m), (b"/tmp/a.txt", Regular, good)]), Refusal::BadPath),
            ("dot-dot dir", pack(&[(b"manifest.json", Regular, m), (b"../x/", Directory, b"")]), Refusal::BadPath),
            (
                "manifest path escapes",
                pack(&[(b"manifest.json", Regular, &manifest_for(&[("../a.txt", good)]))]),
                Refusal::BadPath,
            ),
            (
                "unknown version",
                pack(&[(b"manifest.json", Regular, br#"{"format":"roost-agent-backup","version":2,"files":[]}"#)]),
                Refusal::UnknownVersion,
            ),
            (
                "oversize",
                pack(&[(
                    b"manifest.json",
                    Regular,
                    format!(
                        r#"{{"format":"roost-agent-backup","version":1,"files":[{{"path":"a","size":{},"sha256":"{}"}}]}}"#,
                        MAX_TOTAL_BYTES + 1,
                        "0".repeat(64)
                    )
                    .as_bytes(),
                )]),
                Refusal::TooLarge,
            ),
        ];
        for (name, archive, refusal) in cases {
            let root = tempfile::tempdir().unwrap();
            let state = root.path().join("state");
            std::fs::create_dir_all(&state).unwrap();
            std::fs::write(state.join("keep.txt"), "mine").unwrap();
            match verify(&mut file_with(&archive)) {
                Err(RestoreError::Refused(r)) => assert_eq!(r, refusal, "{name}"),
                other => panic!("{name}: {other:?}"),
            }
            match restore(&mut file_with(&archive), &state) {
                Err(RestoreError::Refused(r)) => assert_eq!(r, refusal, "{name}"),
                other => panic!("{name}: {other:?}"),
            }
            let left: Vec<_> = std::fs::read_dir(root.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
            assert_eq!(left, ["state"], "{name}: nothing beside the state dir");
            assert_eq!(std::fs::read_to_string(state.join("keep.txt")).unwrap(), "mine", "{name}");
            assert!(!root.path().join("a.txt").exists() && !Path::new("/tmp/a.txt").exists(), "{name}");
        }
        let fine = pack(&[(b"manifest.json", Regular, m), (b"workspace/a.txt", Regular, good)]);
        assert_eq!(verify(&mut file_with(&fine)).unwrap().files.len(), 1, "the untampered archive passes");
    }

    #[test]
    fn paths_are_relative_and_plain() {
        for bad in ["", "/a", "a/../b", "..", "./a", "a//b", "a\\b", "a\0b"] {
            assert!(check_path(bad.as_bytes()).is_err(), "{bad:?}");
        }
        assert!(check_path(b"\xff").is_err());
        assert_eq!(check_path(b"workspace/dir/").unwrap(), "workspace/dir");
        assert!(check_path("agents/main/sessions/a b.jsonl".as_bytes()).is_ok());
    }
}
