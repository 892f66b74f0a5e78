//! The browser UI from `web/`: read from disk in debug builds, embedded in release builds.

use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use rust_embed::RustEmbed;

use crate::error::AppError;

#[derive(RustEmbed)]
#[folder = "../web/"]
#[exclude = "tests/*"]
#[exclude = "*.md"]
struct Assets;

/// Page paths and the file each one serves; the app frame routes in the browser.
fn file_for(path: &str) -> &str {
    match path {
        "/" | "/chat" | "/settings" | "/usage" | "/billing" | "/integrations" | "/files" | "/admin" => "index.html",
        "/login" => "login.html",
        "/signup" => "signup.html",
        "/reset" => "reset.html",
        other => other.trim_start_matches('/'),
    }
}

pub async fn serve(method: Method, uri: Uri, headers: HeaderMap) -> Response {
    if method != Method::GET && method != Method::HEAD {
        return AppError::not_found("There is no such page.").into_response();
    }
    let name = file_for(uri.path());
    let Some(file) = (!name.contains("..")).then(|| Assets::get(name)).flatten() else {
        return not_found_page(&headers);
    };
    let etag = format!("\"{}\"", hex::encode(&file.metadata.sha256_hash()[..12]));
    if headers.get(header::IF_NONE_MATCH).is_some_and(|v| v.as_bytes() == etag.as_bytes()) {
        return StatusCode::NOT_MODIFIED.into_response();
    }
    let mime = file.metadata.mimetype().to_string();
    let mut response = (StatusCode::OK, file.data.into_owned()).into_response();
    let h = response.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_str(&mime).unwrap_or(HeaderValue::from_static("application/octet-stream")),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    if let Ok(v) = HeaderValue::from_str(&etag) {
        h.insert(header::ETAG, v);
    }
    response
}

/// A browser asking for a page that does not exist gets the app's own "page not found"; any
/// other client the JSON error.
fn not_found_page(headers: &HeaderMap) -> Response {
    let wants_html = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|accept| accept.split(',').any(|part| part.trim().starts_with("text/html")));
    match Assets::get("404.html").filter(|_| wants_html) {
        Some(file) => {
            let mut response = (StatusCode::NOT_FOUND, file.data.into_owned()).into_response();
            response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("text/html; charset=utf-8"));
            response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
            response
        }
        None => AppError::not_found("There is no such page.").into_response(),
    }
}

/// One HTML file of `web/`, answered with `status`.
pub fn file(name: &str, status: StatusCode) -> Option<Response> {
    let file = Assets::get(name)?;
    let mut response = (status, file.data.into_owned()).into_response();
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("text/html; charset=utf-8"));
    Some(response)
}
