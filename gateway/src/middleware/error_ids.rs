//! An unexpected failure tells the user only that it happened and under which request id; the
//! cause is in the server's log, in the span that carries the same id.

use axum::extract::Request;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::REQUEST_ID;
use crate::error::InternalFailure;

pub async fn name_the_request(request: Request, next: Next) -> Response {
    let id = request.headers().get(REQUEST_ID).and_then(|v| v.to_str().ok()).map(str::to_string);
    let response = next.run(request).await;
    let (Some(id), Some(_)) = (id, response.extensions().get::<InternalFailure>()) else { return response };
    let message =
        format!("Something went wrong on the server. If it keeps happening, give the operator this request id: {id}.");
    let body = json!({ "error": { "code": "internal", "message": message, "request_id": id } });
    (response.status(), axum::Json(body)).into_response()
}
