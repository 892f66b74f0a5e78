//! Sends a checked call to its provider with the operator's key (or the user's own) and streams
//! the answer back as it arrives. Only the body and the headers named here cross: never the agent's credential,
//! cookies or other headers on the way up, never the provider's other headers on the way down.

use axum::body::Body;
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};
use axum::response::Response;
use billing::plans::ModelPrice;
use billing::usage::{Framing, UsageMeter};

use super::metered_body::MeteredBody;
use super::own_key::OwnKey;
use super::usage_recorder::{self, Tally, UsageCall};
use super::{LlmApi, ModelRequest, Upstream};
use crate::app::App;
use crate::domain::UserId;
use crate::error::{AppError, AppResult};

const ANTHROPIC_VERSION: HeaderName = HeaderName::from_static("anthropic-version");
const ANTHROPIC_BETA: HeaderName = HeaderName::from_static("anthropic-beta");
const DEFAULT_ANTHROPIC_VERSION: HeaderValue = HeaderValue::from_static("2023-06-01");

/// The provider headers an agent needs to read the answer (and to back off when told to).
const PASSED_BACK: [HeaderName; 3] = [header::CONTENT_TYPE, header::CACHE_CONTROL, header::RETRY_AFTER];

/// Forwards a model call; its usage is recorded once, whatever happens after this starts.
/// `own_key` is the user's own key that `upstream` presents, if it is theirs.
#[allow(clippy::too_many_arguments)]
pub async fn forward_model_call(
    app: &App,
    upstream: &Upstream,
    own_key: Option<&OwnKey>,
    api: LlmApi,
    user: UserId,
    request: ModelRequest,
    price: ModelPrice,
    agent_headers: &HeaderMap,
) -> AppResult<Response> {
    let user_id = user.clone();
    // The agent is busy (not idle) until the answer has been streamed to it.
    let in_flight = app.machines.activity().model_call(&user);
    let report = usage_recorder::start(app.db.clone(), UsageCall { user, api, model: request.model, price });
    let path = match api {
        LlmApi::OpenAi => "/chat/completions",
        LlmApi::Anthropic => "/v1/messages",
    };
    let (auth_name, auth_value) = upstream.auth_header();
    let mut call = app
        .llm
        .client()
        .post(upstream.url(path))
        .header(auth_name, auth_value)
        .header(header::CONTENT_TYPE, "application/json");
    if api == LlmApi::Anthropic {
        let version = agent_headers.get(&ANTHROPIC_VERSION).cloned().unwrap_or(DEFAULT_ANTHROPIC_VERSION);
        call = call.header(ANTHROPIC_VERSION, version);
        for beta in agent_headers.get_all(&ANTHROPIC_BETA) {
            call = call.header(ANTHROPIC_BETA, beta.clone());
        }
    }
    // Dropping `report` unsent (an error here, or the agent leaving) records the call as unanswered.
    let answer = call.body(request.body).send().await.map_err(|e| unreachable_provider(api, e))?;
    let status = answer.status();
    if let Some(own) = own_key {
        if matches!(status, StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN) {
            report.send(Tally { upstream_status: status.as_u16(), usage: Default::default(), complete: false });
            own.mark_failing(app, &user_id).await;
            // A 400, not the provider's 401: OpenClaw would lock the credential for minutes.
            return Err(AppError::bad_request(
                "llm_key_refused",
                format!(
                    "{} refused your own API key, so your agent cannot answer. Replace or remove the key in Settings.",
                    super::own_key::label(own.provider)
                ),
            ));
        }
        if status.is_success() {
            own.mark_working(app, &user_id).await;
        }
    }
    let headers = passed_back(answer.headers());
    let content_type = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok());
    let meter = UsageMeter::new(api, Framing::from_content_type(content_type));
    let body = MeteredBody::new(Box::pin(answer.bytes_stream()), status.as_u16(), meter, report, in_flight);
    Ok(response(status, headers, Body::from_stream(body)))
}

/// `GET /models` with the operator's key: nothing to meter.
pub async fn forward_list_models(app: &App, upstream: &Upstream) -> AppResult<Response> {
    let (auth_name, auth_value) = upstream.auth_header();
    let answer = app
        .llm
        .client()
        .get(upstream.url("/models"))
        .header(auth_name, auth_value)
        .send()
        .await
        .map_err(|e| unreachable_provider(LlmApi::OpenAi, e))?;
    let status = answer.status();
    let headers = passed_back(answer.headers());
    Ok(response(status, headers, Body::from_stream(answer.bytes_stream())))
}

fn passed_back(upstream: &HeaderMap) -> HeaderMap {
    let mut headers = HeaderMap::new();
    for name in PASSED_BACK {
        if let Some(value) = upstream.get(&name) {
            headers.insert(name, value.clone());
        }
    }
    headers
}

fn response(status: StatusCode, headers: HeaderMap, body: Body) -> Response {
    let mut response = Response::new(body);
    *response.status_mut() = status;
    *response.headers_mut() = headers;
    response
}

fn unreachable_provider(api: LlmApi, error: reqwest::Error) -> AppError {
    tracing::warn!(api = api.as_str(), error = ?error, "the model provider did not answer");
    if error.is_timeout() {
        AppError::new(
            StatusCode::GATEWAY_TIMEOUT,
            "upstream_timeout",
            "The model provider did not answer in time. Try again in a minute.",
        )
    } else {
        AppError::new(
            StatusCode::BAD_GATEWAY,
            "upstream_unreachable",
            "The model provider could not be reached. Try again in a minute.",
        )
    }
}
