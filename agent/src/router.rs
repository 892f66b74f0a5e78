//! Every request: admitted only with the machine's secret (which is then removed), then either
//! one of the sidecar's own routes under `/roost/` (readiness, secret files, workspace files,
//! backups) or forwarded to OpenClaw.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, combinators::BoxBody};
use hyper::body::Incoming;
use hyper::header::{CONNECTION, CONTENT_TYPE, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use tokio::sync::watch;

use crate::secret::AgentSecret;
use crate::supervisor::{Pause, Stage};
use crate::{
    EXPORT_PATH, FILES_PATH, IMPORT_PATH, READY_PATH, SECRET_HEADER, SECRETS_PATH, backups, files, proxy, ready,
    workspace_files,
};

pub type Body = BoxBody<Bytes, hyper::Error>;

pub struct Context {
    pub secret: AgentSecret,
    /// OpenClaw on loopback.
    pub upstream: SocketAddr,
    pub stage: watch::Receiver<Stage>,
    /// OpenClaw's state dir: secret files go in its fixed subdirectory, and its workspace is
    /// the `workspace` one.
    pub state_dir: PathBuf,
    /// Stops OpenClaw while a backup is restored ([`crate::supervisor::run`] watches it).
    pub pause: Pause,
    /// The OpenClaw version this image runs, written into backups' manifests.
    pub openclaw_version: Option<String>,
}

pub async fn handle(mut req: Request<Incoming>, ctx: Arc<Context>) -> Response<Body> {
    if !admitted(&req, &ctx.secret) {
        let mut res = json(StatusCode::UNAUTHORIZED, r#"{"error":"This port admits only Roost."}"#);
        res.headers_mut().insert(CONNECTION, HeaderValue::from_static("close"));
        return res;
    }
    req.headers_mut().remove(SECRET_HEADER);
    let path = req.uri().path();
    if path == READY_PATH {
        return match *req.method() {
            Method::GET => ready::answer(&ctx).await,
            _ => json(StatusCode::METHOD_NOT_ALLOWED, r#"{"error":"Use GET for readiness."}"#),
        };
    }
    if path.starts_with(SECRETS_PATH) {
        return files::handle(req, &ctx).await;
    }
    if path.starts_with(FILES_PATH) {
        return workspace_files::handle(req, &ctx).await;
    }
    if path == EXPORT_PATH || path == IMPORT_PATH {
        return backups::handle(req, &ctx).await;
    }
    if path.starts_with("/roost/") {
        return json(StatusCode::NOT_FOUND, r#"{"error":"There is no such sidecar route."}"#);
    }
    proxy::forward(req, ctx.upstream).await
}

/// Exactly one secret header, equal to the machine's secret.
fn admitted(req: &Request<Incoming>, secret: &AgentSecret) -> bool {
    let mut values = req.headers().get_all(SECRET_HEADER).iter();
    match (values.next(), values.next()) {
        (Some(value), None) => secret.matches(value.as_bytes()),
        _ => false,
    }
}

pub fn json(status: StatusCode, body: impl Into<Bytes>) -> Response<Body> {
    let mut res = Response::new(Full::new(body.into()).map_err(|never| match never {}).boxed());
    *res.status_mut() = status;
    res.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    res
}
