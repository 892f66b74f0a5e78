//! The router's side of connection accounting: a request in progress protects its connection
//! from eviction until its response body ends, and an answered upgrade moves the connection
//! into the WebSocket budget.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::body::Body;
use axum::extract::Request;
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use http_body::{Frame, SizeHint};

use super::connections::{Busy, Slot};
use crate::error::AppError;

pub async fn track(request: Request, next: Next) -> Response {
    // Absent when the router is driven without `serve` (the metrics listener has its own).
    let Some(slot) = request.extensions().get::<Arc<Slot>>().cloned() else {
        return next.run(request).await;
    };
    let busy = slot.begin_request();
    let reservation = if wants_websocket(&request) {
        match slot.connections().reserve_websocket() {
            Some(reservation) => Some(reservation),
            None => {
                return AppError::unavailable(
                    "too_many_connections",
                    "This server holds as many chat connections as it allows. Try again in a moment.",
                    5,
                )
                .into_response();
            }
        }
    } else {
        None
    };
    let response = next.run(request).await;
    if let Some(reservation) = reservation
        && response.status() == StatusCode::SWITCHING_PROTOCOLS
    {
        slot.became_websocket(reservation);
    }
    response.map(|body| Body::new(WhileBusy { body, _busy: busy }))
}

fn wants_websocket(request: &Request) -> bool {
    request
        .headers()
        .get(header::UPGRADE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("websocket"))
}

/// A response body that keeps its request counted as in progress until it is done.
struct WhileBusy {
    body: Body,
    _busy: Busy,
}

impl http_body::Body for WhileBusy {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        Pin::new(&mut self.get_mut().body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}
