//! The agent's workspace files, for Roost (the router admits only Roost's secret before
//! anything here runs), all through [`crate::workspace`], which keeps every path inside it:
//!
//! - `GET /roost/files/list?path=<dir>`: `{"entries":[{name,kind,size,modified}],"truncated"}`
//! - `GET /roost/files/content?path=<file>`: the bytes, streamed, with their length
//! - `PUT /roost/files/content?path=<file>`: the body is the file, streamed to a temporary file
//!   and renamed at the end; over [`MAX_UPLOAD_BYTES`] it is 413 and nothing is kept
//! - `DELETE /roost/files/content?path=<path>[&recursive=true]`
//!
//! Errors are `{"error": sentence, "code": FsError::code}` with [`FsError::status`].

use std::path::Path;
use std::pin::Pin;
use std::task::{Context as TaskContext, Poll};

use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::body::{Frame, Incoming, SizeHint};
use hyper::header::{CONTENT_LENGTH, CONTENT_TYPE, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use serde_json::json;
use tokio::io::{AsyncRead, ReadBuf};

use crate::FILES_PATH;
use crate::router::{Body, Context, json as respond};
use crate::workspace::{FsError, MAX_UPLOAD_BYTES, Upload, Workspace, WorkspacePath};

/// Chunks read from disk for a download.
const READ_CHUNK: usize = 64 * 1024;

pub async fn handle(req: Request<Incoming>, ctx: &Context) -> Response<Body> {
    let route = req.uri().path().strip_prefix(FILES_PATH).unwrap_or_default().to_string();
    let Some(query) = Query::parse(req.uri().query()) else {
        return error(&FsError::BadPath(crate::workspace::PathError::ParentDir));
    };
    let path = match WorkspacePath::parse(&query.path) {
        Ok(path) => path,
        Err(e) => return error(&FsError::BadPath(e)),
    };
    let state_dir = ctx.state_dir.clone();
    match (req.method().clone(), route.as_str()) {
        (Method::GET, "list") => {
            match blocking(move || Workspace::open(&state_dir).map_err(FsError::from)?.list(&path)).await {
                Ok(listing) => {
                    let entries: Vec<_> = listing
                        .entries
                        .iter()
                        .map(|e| json!({"name": e.name, "kind": e.kind.as_str(), "size": e.size, "modified": e.modified}))
                        .collect();
                    respond(StatusCode::OK, json!({"entries": entries, "truncated": listing.truncated}).to_string())
                }
                Err(e) => error(&e),
            }
        }
        (Method::GET, "content") => {
            match blocking(move || Workspace::open(&state_dir).map_err(FsError::from)?.open_file(&path)).await {
                Ok((file, size)) => download(file, size),
                Err(e) => error(&e),
            }
        }
        (Method::PUT, "content") => upload(req, &state_dir, path).await,
        (Method::DELETE, "content") => {
            let recursive = query.recursive;
            match blocking(move || Workspace::open(&state_dir).map_err(FsError::from)?.delete(&path, recursive)).await {
                Ok(()) => respond(StatusCode::OK, r#"{"deleted":true}"#),
                Err(e) => error(&e),
            }
        }
        (_, "list" | "content") => respond(
            StatusCode::METHOD_NOT_ALLOWED,
            r#"{"error":"Use GET for a listing; GET, PUT or DELETE for content."}"#,
        ),
        _ => respond(StatusCode::NOT_FOUND, r#"{"error":"There is no such sidecar route."}"#),
    }
}

struct Query {
    path: String,
    recursive: bool,
}

impl Query {
    /// `path` at most once (absent: the workspace itself), `recursive=true` optional.
    fn parse(query: Option<&str>) -> Option<Self> {
        let mut path = None;
        let mut recursive = false;
        for (key, value) in form_urlencoded::parse(query.unwrap_or_default().as_bytes()) {
            match &*key {
                "path" if path.is_none() => path = Some(value.into_owned()),
                "recursive" => recursive = value == "true",
                _ => return None,
            }
        }
        Some(Self { path: path.unwrap_or_default(), recursive })
    }
}

async fn blocking<T: Send + 'static>(work: impl FnOnce() -> Result<T, FsError> + Send + 'static) -> Result<T, FsError> {
    tokio::task::spawn_blocking(work).await.unwrap_or_else(|e| Err(FsError::Io(std::io::Error::other(e))))
}

/// A file's bytes as a response, with their length (the backup route streams its archive so).
pub(crate) fn download(file: std::fs::File, size: u64) -> Response<Body> {
    let body = FileBody { file: tokio::fs::File::from_std(file), remaining: size, buf: vec![0; READ_CHUNK] };
    let mut res = Response::new(body.boxed());
    res.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static("application/octet-stream"));
    res.headers_mut().insert(CONTENT_LENGTH, HeaderValue::from(size));
    res
}

/// Streams the body into an [`Upload`], chunk by chunk off the async workers; refuses a declared
/// or actual length over the limit, and keeps nothing of a refused or broken upload.
async fn upload(req: Request<Incoming>, state_dir: &Path, path: WorkspacePath) -> Response<Body> {
    let declared = req.headers().get(CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > MAX_UPLOAD_BYTES) {
        return error(&FsError::TooLarge);
    }
    let state_dir = state_dir.to_path_buf();
    let mut upload =
        match blocking(move || Workspace::open(&state_dir).map_err(FsError::from)?.create_upload(&path)).await {
            Ok(upload) => upload,
            Err(e) => return error(&e),
        };
    let mut body = req.into_body();
    while let Some(frame) = body.frame().await {
        let Ok(frame) = frame else {
            return respond(StatusCode::BAD_REQUEST, r#"{"error":"The upload was cut off.","code":"cut_off"}"#);
        };
        let Ok(chunk) = frame.into_data() else { continue };
        upload = match blocking(move || upload.write(&chunk).map(|()| upload)).await {
            Ok(upload) => upload,
            // The upload is dropped with its error: its temporary file is removed.
            Err(e) => return error(&e),
        };
    }
    match blocking(move || Upload::commit(upload)).await {
        Ok(size) => respond(StatusCode::OK, json!({"size": size}).to_string()),
        Err(e) => error(&e),
    }
}

fn error(e: &FsError) -> Response<Body> {
    if let FsError::Io(io) = e {
        tracing::warn!(error = %io, "a workspace file operation failed");
    }
    let status = StatusCode::from_u16(e.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    respond(status, json!({"error": e.sentence(), "code": e.code()}).to_string())
}

/// A file's bytes as a response body. A read error ends the body early: the response is then
/// shorter than its `Content-Length`, which hyper treats as a broken response (the connection is
/// closed), so Roost never takes a cut-off file for a whole one.
struct FileBody {
    file: tokio::fs::File,
    remaining: u64,
    buf: Vec<u8>,
}

impl hyper::body::Body for FileBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        if self.remaining == 0 {
            return Poll::Ready(None);
        }
        let this = &mut *self;
        let want = this.buf.len().min(usize::try_from(this.remaining).unwrap_or(usize::MAX));
        let mut buf = ReadBuf::new(&mut this.buf[..want]);
        match Pin::new(&mut this.file).poll_read(cx, &mut buf) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(Ok(())) if buf.filled().is_empty() => {
                this.remaining = 0;
                Poll::Ready(None)
            }
            Poll::Ready(Ok(())) => {
                let chunk = Bytes::copy_from_slice(buf.filled());
                this.remaining = this.remaining.saturating_sub(chunk.len() as u64);
                Poll::Ready(Some(Ok(Frame::data(chunk))))
            }
            Poll::Ready(Err(e)) => {
                tracing::warn!(error = %e, "reading a workspace file failed mid-download");
                this.remaining = 0;
                Poll::Ready(None)
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.remaining == 0
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.remaining)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_query_names_one_path() {
        let q = Query::parse(Some("path=notes%2Fa%20b.md&recursive=true")).unwrap();
        assert_eq!((q.path.as_str(), q.recursive), ("notes/a b.md", true));
        assert_eq!(Query::parse(None).unwrap().path, "");
        assert!(Query::parse(Some("path=a&path=b")).is_none());
        assert!(Query::parse(Some("other=1")).is_none());
    }
}
