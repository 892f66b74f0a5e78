//! `PUT /roost/secrets/<name>` (the body is the file) and `DELETE /roost/secrets/<name>`: the
//! secret files Roost gives the agent (bot tokens), written under the state dir's fixed secrets
//! directory only, 0600, atomically, at most [`secret_files::MAX_BYTES`]. The router admits only
//! Roost's secret before anything here runs.

use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};
use serde_json::json;

use crate::router::{Body, Context, json as respond};
use crate::{SECRETS_PATH, secret_files};

pub async fn handle(req: Request<Incoming>, ctx: &Context) -> Response<Body> {
    let name = req.uri().path().strip_prefix(SECRETS_PATH).unwrap_or_default().to_string();
    let Ok(name) = secret_files::check_name(&name).map(str::to_string) else {
        return error(StatusCode::BAD_REQUEST, "That is not a secret file name.");
    };
    let path = secret_files::dir(&ctx.state_dir).join(&name);
    let contents = match *req.method() {
        Method::PUT => {
            let declared = req
                .headers()
                .get(hyper::header::CONTENT_LENGTH)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse::<usize>().ok());
            if declared.is_some_and(|n| n > secret_files::MAX_BYTES) {
                return too_large();
            }
            match Limited::new(req.into_body(), secret_files::MAX_BYTES).collect().await {
                Ok(body) => Some(body.to_bytes().to_vec()),
                Err(e) if e.downcast_ref::<http_body_util::LengthLimitError>().is_some() => return too_large(),
                Err(_) => return error(StatusCode::BAD_REQUEST, "The body could not be read."),
            }
        }
        Method::DELETE => None,
        _ => return error(StatusCode::METHOD_NOT_ALLOWED, "Use PUT or DELETE for secret files."),
    };
    let written = path.clone();
    let done = tokio::task::spawn_blocking(move || secret_files::write(&written, contents.as_deref())).await;
    match done {
        Ok(Ok(())) => respond(StatusCode::OK, json!({ "path": path }).to_string()),
        Ok(Err(e)) => {
            tracing::warn!(file = %name, error = %e, "a secret file could not be written");
            error(StatusCode::INTERNAL_SERVER_ERROR, "The secret file could not be written.")
        }
        Err(_) => error(StatusCode::INTERNAL_SERVER_ERROR, "The secret file could not be written."),
    }
}

fn too_large() -> Response<Body> {
    error(StatusCode::PAYLOAD_TOO_LARGE, "A secret file is at most 4 KiB.")
}

fn error(status: StatusCode, message: &str) -> Response<Body> {
    respond(status, json!({ "error": message }).to_string())
}
