//! Backups of a Fly agent, through its sidecar (`roost_agent::backups`) with the machine's
//! agent secret: `GET /roost/export` streams the archive written on the volume, `PUT
//! /roost/import` takes one (the sidecar pauses OpenClaw for the swap). Both stream: no
//! archive is ever held in memory whole.

use std::io::{self, SeekFrom};
use std::time::Duration;

use futures_util::StreamExt;
use tokio::io::AsyncSeekExt;
use tokio::sync::mpsc;

use super::ready::AGENT_SECRET_HEADER;
use super::workspace_files::{Sidecar, bounded_json};
use crate::ProvisionError;
use crate::archive::{Refusal, Restored};
use crate::backup::ArchiveChunks;

/// A whole backup or restore of up to 1 GiB over the private network, however slow the far
/// end (the sidecar writes or checks the whole archive before it answers).
const TRANSFER: Duration = Duration::from_secs(60 * 60);
/// The sidecar writes the whole archive on the volume before its first byte; after that, a
/// download that sends nothing for this long has stalled.
const STALL: Duration = Duration::from_secs(10 * 60);
/// Chunks read ahead of a slow download.
const AHEAD: usize = 16;

impl Sidecar {
    pub async fn export(&self) -> Result<ArchiveChunks, ProvisionError> {
        let url = self.route(roost_agent::EXPORT_PATH).ok_or_else(bad_address)?;
        let res = self.send_backup(self.http.get(url)).await?;
        if !res.status().is_success() {
            return Err(answered(res).await);
        }
        let (tx, rx) = mpsc::channel(AHEAD);
        tokio::spawn(async move {
            let mut body = res.bytes_stream();
            loop {
                let chunk = match tokio::time::timeout(STALL, body.next()).await {
                    Ok(None) => return,
                    Ok(Some(Ok(chunk))) => Ok(chunk.to_vec()),
                    Ok(Some(Err(e))) => Err(io::Error::other(e.without_url())),
                    Err(_) => Err(io::Error::new(io::ErrorKind::TimedOut, "the agent's backup stalled")),
                };
                let end = chunk.is_err();
                // A send fails once the download is gone: stop reading then too.
                if tx.send(chunk).await.is_err() || end {
                    return;
                }
            }
        });
        Ok(rx)
    }

    pub async fn import(&self, archive: std::fs::File) -> Result<Restored, ProvisionError> {
        let url = self.route(roost_agent::IMPORT_PATH).ok_or_else(bad_address)?;
        let mut file = tokio::fs::File::from_std(archive);
        let length = file.seek(SeekFrom::End(0)).await?;
        file.seek(SeekFrom::Start(0)).await?;
        let body = crate::files::stream_file(file.into_std().await);
        let request = self
            .http
            .put(url)
            .header(reqwest::header::CONTENT_TYPE, "application/gzip")
            .header(reqwest::header::CONTENT_LENGTH, length)
            .body(reqwest::Body::wrap_stream(body));
        let res = self.send_backup(request).await?;
        if !res.status().is_success() {
            return Err(answered(res).await);
        }
        let answer = bounded_json(res).await.map_err(|e| sidecar(e.to_string()))?;
        Restored::from_json(&answer).ok_or_else(|| sidecar("its answer names no restore".into()))
    }

    async fn send_backup(&self, request: reqwest::RequestBuilder) -> Result<reqwest::Response, ProvisionError> {
        request
            .header(AGENT_SECRET_HEADER, &self.secret)
            .timeout(TRANSFER)
            .send()
            .await
            .map_err(|e| sidecar(e.without_url().to_string()))
    }
}

/// The sidecar's refusal of an archive (the same [`Refusal`] the gateway's own check gives), or
/// a failure for the log.
async fn answered(res: reqwest::Response) -> ProvisionError {
    let status = res.status();
    let code = bounded_json(res).await.ok().and_then(|a| a["code"].as_str().map(str::to_string));
    match code.as_deref().and_then(Refusal::from_code) {
        Some(refusal) => ProvisionError::Refused(refusal),
        None => sidecar(format!("it answered {status} ({})", code.as_deref().unwrap_or("no code"))),
    }
}

fn sidecar(why: String) -> ProvisionError {
    ProvisionError::Start(format!("the agent's sidecar, for a backup: {why}"))
}

fn bad_address() -> ProvisionError {
    sidecar("a bad agent address".into())
}
