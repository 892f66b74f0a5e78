//! Layers every request goes through, outermost first.

mod csrf;
mod error_ids;
mod metrics;
mod timeout;

use axum::Router;
use axum::http::{HeaderName, HeaderValue, header};
use axum::response::Response;
use tower::ServiceBuilder;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::sensitive_headers::SetSensitiveRequestHeadersLayer;
use tower_http::set_header::SetResponseHeaderLayer;
use tower_http::trace::TraceLayer;

use crate::app::AppState;

const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
/// On every response, not only pages: a JSON error or a script opened directly is a document too.
const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; \
connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'";
/// Two years, the preload list's minimum; no `includeSubDomains`, the operator's other hosts are not ours.
const HSTS: &str = "max-age=63072000";

pub fn apply(state: AppState, router: Router) -> Router {
    let trace = TraceLayer::new_for_http().make_span_with(|req: &axum::http::Request<_>| {
        let request_id = req.headers().get(REQUEST_ID).and_then(|v| v.to_str().ok()).unwrap_or("-");
        // The path only: a query string could carry something private.
        tracing::info_span!("request", id = %request_id, method = %req.method(), path = %req.uri().path())
    });
    // Only when users reach Roost over https: a browser ignores it on http, and it would pin
    // a plain-http origin to https for two years if it did not.
    let hsts = state.site.secure_cookies.then(|| HeaderValue::from_static(HSTS));
    router
        .layer(axum::middleware::from_fn_with_state(state, csrf::check))
        .layer(axum::middleware::from_fn(timeout::limit))
        .layer(
            ServiceBuilder::new()
                .layer(SetSensitiveRequestHeadersLayer::new([
                    header::AUTHORIZATION,
                    header::COOKIE,
                    HeaderName::from_static("x-api-key"),
                ]))
                .layer(SetRequestIdLayer::new(REQUEST_ID, MakeRequestUuid))
                .layer(trace)
                .layer(PropagateRequestIdLayer::new(REQUEST_ID))
                .layer(axum::middleware::from_fn(error_ids::name_the_request))
                .layer(axum::middleware::from_fn(metrics::record))
                .layer(SetResponseHeaderLayer::overriding(
                    header::X_CONTENT_TYPE_OPTIONS,
                    HeaderValue::from_static("nosniff"),
                ))
                .layer(SetResponseHeaderLayer::overriding(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY")))
                // Only the agent console (`/agent/*`) brings its own: the Control UI's, with
                // the hashes of its inline scripts.
                .layer(SetResponseHeaderLayer::if_not_present(
                    header::CONTENT_SECURITY_POLICY,
                    HeaderValue::from_static(CSP),
                ))
                .layer(SetResponseHeaderLayer::overriding(
                    header::REFERRER_POLICY,
                    HeaderValue::from_static("no-referrer"),
                ))
                .layer(SetResponseHeaderLayer::overriding(header::STRICT_TRANSPORT_SECURITY, move |_: &Response| {
                    hsts.clone()
                })),
        )
        .layer(axum::middleware::from_fn(crate::http_server::track))
}
