//! `GET /roost/ready`: 200 once OpenClaw's own `/readyz` says ready on loopback; otherwise 503
//! with the supervisor's stage (what the user's page shows while they wait) and what OpenClaw
//! still waits for.

use std::net::SocketAddr;
use std::time::Duration;

use http_body_util::{BodyExt, Empty, Limited};
use hyper::header::HOST;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use tokio::net::TcpStream;

use crate::router::{Body, Context, json as respond};

const PROBE_TIMEOUT: Duration = Duration::from_secs(3);
const MAX_BODY: usize = 64 * 1024;

pub async fn answer(ctx: &Context) -> Response<Body> {
    let stage = ctx.stage.borrow().clone();
    if stage.stopping() {
        return not_ready(&stage.describe(), &[]);
    }
    match tokio::time::timeout(PROBE_TIMEOUT, probe(ctx.upstream)).await {
        Ok(Ok(body)) if body["ready"] == true => respond(StatusCode::OK, json!({ "ready": true }).to_string()),
        Ok(Ok(body)) => {
            let failing: Vec<String> = body["failing"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|v| v.as_str().map(str::to_string))
                .take(16)
                .collect();
            not_ready(&stage.describe(), &failing)
        }
        _ => not_ready(&stage.describe(), &[]),
    }
}

fn not_ready(stage: &str, failing: &[String]) -> Response<Body> {
    respond(StatusCode::SERVICE_UNAVAILABLE, json!({ "ready": false, "stage": stage, "failing": failing }).to_string())
}

/// OpenClaw's `/readyz` body (it answers 503 with JSON while starting, 200 once ready).
async fn probe(upstream: SocketAddr) -> Result<Value, String> {
    let stream = TcpStream::connect(upstream).await.map_err(|e| e.to_string())?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake::<_, Empty<bytes::Bytes>>(TokioIo::new(stream))
        .await
        .map_err(|e| e.to_string())?;
    tokio::spawn(conn);
    let req = Request::get("/readyz")
        .header(HOST, format!("127.0.0.1:{}", upstream.port()))
        .body(Empty::new())
        .map_err(|e| e.to_string())?;
    let res = sender.send_request(req).await.map_err(|e| e.to_string())?;
    let body = Limited::new(res.into_body(), MAX_BODY).collect().await.map_err(|e| e.to_string())?.to_bytes();
    serde_json::from_slice(&body).map_err(|e| e.to_string())
}
