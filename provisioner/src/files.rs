//! The agent's workspace files as the gateway reaches them, whichever the provider: the types
//! ([`roost_agent::workspace`] is where every path is checked) and the upload pump both providers
//! share. The local provider works on the agent's state dir directly (outside its sandbox, so a
//! stopped agent's files are there too); the Fly provider asks the machine's sidecar.

use std::pin::Pin;

use bytes::Bytes;
use futures_util::{Stream, StreamExt};

pub use roost_agent::workspace::{
    Entry, FsError, Kind, Listing, MAX_UPLOAD_BYTES, PathError, Upload, Workspace, WorkspacePath,
};

/// A file's bytes, streamed (an upload's body, or a download).
pub type ByteStream = Pin<Box<dyn Stream<Item = Result<Bytes, std::io::Error>> + Send>>;

/// Upload chunks are gathered to this size before each (blocking) write.
const WRITE_BATCH: usize = 1024 * 1024;

pub struct Download {
    pub size: u64,
    pub body: ByteStream,
}

#[derive(Debug, thiserror::Error)]
pub enum FileError {
    /// Refused or failed in the workspace itself (a bad path, not found, too large…).
    #[error("{}", .0.sentence())]
    Fs(FsError),
    /// The agent's machine is stopped, and only its running sidecar reaches the files.
    #[error("the agent's machine is not running")]
    NotRunning,
    /// The upload's own body broke off (the client went away).
    #[error("the upload was cut off")]
    CutOff,
    /// The sidecar could not be reached or answered nonsense: for the log only.
    #[error("the agent's sidecar: {0}")]
    Agent(String),
    #[error("{0}")]
    Unsupported(&'static str),
}

impl FileError {
    /// What a user may be told: a plain sentence, nothing internal.
    pub fn public_message(&self) -> &'static str {
        match self {
            Self::Fs(e) => e.sentence(),
            Self::NotRunning => "Your agent's machine is stopped. Start it (send it a message) to reach its files.",
            Self::CutOff => "The upload was cut off before it ended; nothing was stored.",
            Self::Agent(_) => "Your agent's files could not be reached. Try again in a moment.",
            Self::Unsupported(why) => why,
        }
    }
}

impl From<FsError> for FileError {
    fn from(e: FsError) -> Self {
        Self::Fs(e)
    }
}

/// Runs blocking workspace work off the async workers.
pub async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, FsError> + Send + 'static,
) -> Result<T, FsError> {
    tokio::task::spawn_blocking(work).await.unwrap_or_else(|e| Err(FsError::Io(std::io::Error::other(e))))
}

/// Writes `body` into `upload` in batches and renames it into place; an oversize or broken body
/// drops the upload, which removes its temporary file: nothing is stored.
pub async fn pump(mut upload: Upload, mut body: ByteStream) -> Result<u64, FileError> {
    let mut batch = Vec::with_capacity(WRITE_BATCH);
    loop {
        let next = body.next().await;
        let chunk = match next {
            Some(Ok(chunk)) => Some(chunk),
            Some(Err(_)) => return Err(FileError::CutOff),
            None => None,
        };
        if let Some(chunk) = &chunk {
            if upload.written() + (batch.len() + chunk.len()) as u64 > MAX_UPLOAD_BYTES {
                return Err(FsError::TooLarge.into());
            }
            batch.extend_from_slice(chunk);
        }
        if batch.len() >= WRITE_BATCH || (chunk.is_none() && !batch.is_empty()) {
            let full = std::mem::replace(&mut batch, Vec::with_capacity(WRITE_BATCH));
            upload = blocking(move || upload.write(&full).map(|()| upload)).await?;
        }
        if chunk.is_none() {
            return Ok(blocking(move || upload.commit()).await?);
        }
    }
}

/// A file opened for reading, as a stream of chunks.
pub fn stream_file(file: std::fs::File) -> ByteStream {
    use tokio::io::AsyncReadExt;
    let file = tokio::fs::File::from_std(file);
    Box::pin(futures_util::stream::unfold(Some(file), |file| async move {
        let mut file = file?;
        let mut buf = vec![0; 64 * 1024];
        match file.read(&mut buf).await {
            Ok(0) => None,
            Ok(n) => {
                buf.truncate(n);
                Some((Ok(Bytes::from(buf)), Some(file)))
            }
            Err(e) => Some((Err(e), None)),
        }
    }))
}
