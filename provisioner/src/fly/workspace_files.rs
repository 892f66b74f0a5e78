//! Workspace files on a Fly agent's volume, through its sidecar's `/roost/files/…` routes
//! (`roost_agent::workspace_files`) with the machine's agent secret. The sidecar checks every
//! path itself; its error codes come back as the same [`FsError`]s the local provider answers.

use std::time::Duration;

use futures_util::TryStreamExt;

use super::ready::AGENT_SECRET_HEADER;
use crate::files::{ByteStream, Download, Entry, FileError, FsError, Kind, Listing, MAX_UPLOAD_BYTES, WorkspacePath};

/// A listing or a delete.
const SHORT: Duration = Duration::from_secs(15);
/// A whole transfer of up to 100 MB over the private network, however slow the far end.
const TRANSFER: Duration = Duration::from_secs(30 * 60);
/// A listing of `MAX_LIST_ENTRIES` names of at most 255 bytes fits well within this.
const MAX_ANSWER: usize = 2 * 1024 * 1024;

pub(super) struct Sidecar {
    pub http: reqwest::Client,
    pub address: String,
    pub secret: String,
}

impl Sidecar {
    /// `ws://host:port/…` → `http://host:port/<path>` (a route of the sidecar's own).
    pub fn route(&self, path: &str) -> Option<reqwest::Url> {
        let mut url = reqwest::Url::parse(&self.address).ok()?;
        let scheme = if url.scheme() == "wss" { "https" } else { "http" };
        url.set_scheme(scheme).ok()?;
        url.set_path(path);
        url.set_query(None);
        Some(url)
    }

    /// `ws://host:port/…` → `http://host:port/roost/files/<route>?path=…`.
    fn url(&self, route: &str, path: &WorkspacePath, recursive: bool) -> Result<reqwest::Url, FileError> {
        let mut url = self
            .route(&format!("{}{route}", roost_agent::FILES_PATH))
            .ok_or_else(|| FileError::Agent("a bad agent address".into()))?;
        url.query_pairs_mut().append_pair("path", path.as_str());
        if recursive {
            url.query_pairs_mut().append_pair("recursive", "true");
        }
        Ok(url)
    }

    async fn send(&self, request: reqwest::RequestBuilder, timeout: Duration) -> Result<reqwest::Response, FileError> {
        let res = request
            .header(AGENT_SECRET_HEADER, &self.secret)
            .timeout(timeout)
            .send()
            .await
            .map_err(|e| FileError::Agent(e.without_url().to_string()))?;
        if res.status().is_success() {
            return Ok(res);
        }
        Err(refusal(res).await)
    }

    pub async fn list(&self, path: &WorkspacePath) -> Result<Listing, FileError> {
        let res = self.send(self.http.get(self.url("list", path, false)?), SHORT).await?;
        let answer = bounded_json(res).await?;
        let bad = || FileError::Agent("its listing is not one".into());
        let mut entries = Vec::new();
        for entry in answer["entries"].as_array().ok_or_else(bad)? {
            entries.push(Entry {
                name: entry["name"].as_str().ok_or_else(bad)?.to_string(),
                kind: entry["kind"].as_str().and_then(Kind::parse).ok_or_else(bad)?,
                size: entry["size"].as_u64().ok_or_else(bad)?,
                modified: entry["modified"].as_u64(),
            });
        }
        Ok(Listing { entries, truncated: answer["truncated"].as_bool().unwrap_or(false) })
    }

    pub async fn read(&self, path: &WorkspacePath) -> Result<Download, FileError> {
        let res = self.send(self.http.get(self.url("content", path, false)?), TRANSFER).await?;
        let size = res.content_length().ok_or_else(|| FileError::Agent("its file has no length".into()))?;
        Ok(Download { size, body: Box::pin(res.bytes_stream().map_err(std::io::Error::other)) })
    }

    pub async fn write(&self, path: &WorkspacePath, body: ByteStream) -> Result<u64, FileError> {
        let request = self.http.put(self.url("content", path, false)?).body(reqwest::Body::wrap_stream(body));
        let answer = bounded_json(self.send(request, TRANSFER).await?).await?;
        let size = answer["size"].as_u64().ok_or_else(|| FileError::Agent("its answer names no size".into()))?;
        if size > MAX_UPLOAD_BYTES {
            return Err(FileError::Agent("it kept more than an upload may hold".into()));
        }
        Ok(size)
    }

    pub async fn delete(&self, path: &WorkspacePath, recursive: bool) -> Result<(), FileError> {
        self.send(self.http.delete(self.url("content", path, recursive)?), SHORT).await?;
        Ok(())
    }
}

pub(super) async fn bounded_json(res: reqwest::Response) -> Result<serde_json::Value, FileError> {
    if res.content_length().is_some_and(|n| n > MAX_ANSWER as u64) {
        return Err(FileError::Agent("its answer is too long".into()));
    }
    let mut body = Vec::new();
    let mut stream = res.bytes_stream();
    while let Some(chunk) = stream.try_next().await.map_err(|e| FileError::Agent(e.without_url().to_string()))? {
        if body.len() + chunk.len() > MAX_ANSWER {
            return Err(FileError::Agent("its answer is too long".into()));
        }
        body.extend_from_slice(&chunk);
    }
    serde_json::from_slice(&body).map_err(|_| FileError::Agent("its answer is not JSON".into()))
}

/// The sidecar's refusal: one of the workspace's own errors, or else a failure for the log.
async fn refusal(res: reqwest::Response) -> FileError {
    let status = res.status();
    if status == reqwest::StatusCode::PAYLOAD_TOO_LARGE {
        return FsError::TooLarge.into();
    }
    let code = match bounded_json(res).await {
        Ok(answer) => answer["code"].as_str().map(str::to_string),
        Err(_) => None,
    };
    match code.as_deref().and_then(FsError::from_code) {
        Some(e) => e.into(),
        None => FileError::Agent(format!("it answered {status}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_routes_are_on_the_sidecars_address() {
        let sidecar = Sidecar {
            http: reqwest::Client::new(),
            address: "ws://m.vm.roost-abc.internal:8080/".into(),
            secret: "s".into(),
        };
        let path = WorkspacePath::parse("notes/a b&c.md").unwrap();
        assert_eq!(
            sidecar.url("content", &path, true).unwrap().as_str(),
            "http://m.vm.roost-abc.internal:8080/roost/files/content?path=notes%2Fa+b%26c.md&recursive=true"
        );
    }
}
