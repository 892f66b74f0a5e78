//! An upload's body, streamed (the `/api` body limit is for JSON; uploads go up to 100 MB): each
//! chunk must come within [`IDLE`] and the whole within [`WHOLE`], so a stalled client cannot
//! hold an upload open. The request timeout exempts uploads for this reason.

use std::time::Duration;

use axum::body::Body;
use futures_util::StreamExt;
use provisioner::files::ByteStream;
use tokio::time::Instant;

/// The longest wait for the next chunk.
pub const IDLE: Duration = Duration::from_secs(30);
/// The longest a whole upload may take (100 MB at about 60 KB/s).
pub const WHOLE: Duration = Duration::from_secs(30 * 60);

pub fn body_stream(body: Body) -> ByteStream {
    let deadline = Instant::now() + WHOLE;
    let chunks = body.into_data_stream();
    Box::pin(futures_util::stream::unfold(Some(chunks), move |chunks| async move {
        let mut chunks = chunks?;
        let wait = IDLE.min(deadline.saturating_duration_since(Instant::now()));
        match tokio::time::timeout(wait, chunks.next()).await {
            Ok(Some(Ok(chunk))) => Some((Ok(chunk), Some(chunks))),
            Ok(Some(Err(e))) => Some((Err(std::io::Error::other(e)), None)),
            Ok(None) => None,
            Err(_) => Some((Err(std::io::Error::new(std::io::ErrorKind::TimedOut, "the upload stalled")), None)),
        }
    }))
}
