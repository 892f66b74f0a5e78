//! Backups of an agent's state dir on this host (the local provider, and the simulated agent's
//! files): the archive itself is [`crate::archive`]'s; this runs it off the async workers and
//! streams it out through a bounded channel, so no archive is ever held in memory whole.

use std::io::{self, Write};
use std::path::PathBuf;

use tokio::sync::mpsc;

use crate::ProvisionError;
use crate::archive::{self, Manifest, RestoreError, Versions};

/// The archive, in chunks, as it is written; an `Err` chunk ends it (the download then fails:
/// a truncated gzip stream that no import accepts).
pub type ArchiveChunks = mpsc::Receiver<io::Result<Vec<u8>>>;

const CHUNK: usize = 64 * 1024;
/// Chunks written ahead of a slow download: 1 MiB.
const AHEAD: usize = 16;

/// Starts writing the archive of `state_dir` (scratch space in `scratch`, same disk) and returns
/// its chunks. The writer stops when the receiver is dropped.
pub fn stream(state_dir: PathBuf, scratch: PathBuf, versions: Versions) -> ArchiveChunks {
    let (tx, rx) = mpsc::channel(AHEAD);
    tokio::task::spawn_blocking(move || {
        let mut out = ChannelWriter { tx: tx.clone(), buf: Vec::with_capacity(CHUNK) };
        let written = archive::export(&state_dir, &scratch, &versions, &mut out).and_then(|_| out.flush_buf());
        if let Err(e) = written {
            tracing::warn!(error = %e, "a backup could not be written");
            let _ = tx.blocking_send(Err(e));
        }
    });
    rx
}

/// Checks `file` and restores it into `state_dir` (see [`archive::restore`]), off the async
/// workers.
pub async fn restore(file: std::fs::File, state_dir: PathBuf) -> Result<Manifest, ProvisionError> {
    let mut file = file;
    tokio::task::spawn_blocking(move || archive::restore(&mut file, &state_dir))
        .await
        .map_err(|e| ProvisionError::Start(format!("the restore stopped: {e}")))?
        .map_err(|e| match e {
            RestoreError::Refused(refusal) => ProvisionError::Refused(refusal),
            RestoreError::Io(e) => ProvisionError::Io(e),
        })
}

struct ChannelWriter {
    tx: mpsc::Sender<io::Result<Vec<u8>>>,
    buf: Vec<u8>,
}

impl ChannelWriter {
    fn flush_buf(&mut self) -> io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let chunk = std::mem::replace(&mut self.buf, Vec::with_capacity(CHUNK));
        self.tx.blocking_send(Ok(chunk)).map_err(|_| io::Error::new(io::ErrorKind::BrokenPipe, "the download ended"))
    }
}

impl Write for ChannelWriter {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        let room = CHUNK - self.buf.len();
        let n = data.len().min(room);
        self.buf.extend_from_slice(&data[..n]);
        if self.buf.len() == CHUNK {
            self.flush_buf()?;
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.flush_buf()
    }
}
