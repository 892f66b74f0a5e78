//! `/llm/openai/v1/*` and `/llm/anthropic/v1/messages`: the metered model proxy (see `crate::llm`).

use axum::extract::{FromRequest, Request};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;

use crate::app::AppState;
use crate::error::{AppError, AppResult};
use billing::plans::ModelPrice;

use crate::llm::own_key::OwnKey;
use crate::llm::{self, LlmApi, ModelRequest, Upstream};

pub async fn openai_chat_completions(state: AppState, headers: HeaderMap, body: Request) -> Response {
    let api = LlmApi::OpenAi;
    counted(api, model_call(&state, api, &headers, body).await)
}

pub async fn anthropic_messages(state: AppState, headers: HeaderMap, body: Request) -> Response {
    let api = LlmApi::Anthropic;
    counted(api, model_call(&state, api, &headers, body).await)
}

pub async fn openai_models(state: AppState, headers: HeaderMap) -> Response {
    let listed = async {
        llm::authenticate(&state, &headers, LlmApi::OpenAi).await?;
        let upstream = configured(&state, LlmApi::OpenAi)?;
        llm::forward_list_models(&state, upstream).await
    };
    counted(LlmApi::OpenAi, listed.await)
}

/// The caller is checked before the body is read, and the body before anything goes upstream.
/// A user with their own key is served with it (and their model), never with the operator's.
async fn model_call(state: &AppState, api: LlmApi, headers: &HeaderMap, body: Request) -> AppResult<Response> {
    let user = llm::authenticate(state, headers, api).await?;
    let own_key = OwnKey::of(state, &user).await?;
    let own_upstream = own_key.as_ref().map(|own| own.upstream(state, api)).transpose()?;
    let upstream = match &own_upstream {
        Some(upstream) => upstream,
        None => configured(state, api)?,
    };
    let body = Bytes::from_request(body, state).await.map_err(|rejection| match rejection.status() {
        StatusCode::PAYLOAD_TOO_LARGE => {
            AppError::new(StatusCode::PAYLOAD_TOO_LARGE, "body_too_large", "The request body is too large.")
        }
        _ => AppError::bad_request("invalid_body", "The request body could not be read. Send it again."),
    })?;
    let mut request = ModelRequest::parse(api, body)?;
    let price = match &own_key {
        Some(own) => {
            request = request.with_model(&own.model)?;
            if state.llm.own_keys().debit {
                llm::credit_check::check(state, &user, &own.model).await?
            } else {
                // Recorded on the usage page like any call, at no cost in credits.
                ModelPrice { input_per_million: 0, output_per_million: 0 }
            }
        }
        None => llm::credit_check::check(state, &user, &request.model).await?,
    };
    llm::forward_model_call(state, upstream, own_key.as_ref(), api, user, request, price, headers).await
}

fn configured(state: &AppState, api: LlmApi) -> AppResult<&Upstream> {
    state.llm.upstream(api).ok_or_else(|| {
        // Not a 5xx: agents retry those for minutes and then show a generic "try again" message.
        AppError::new(
            StatusCode::BAD_REQUEST,
            "no_model_configured",
            "No model is configured on this Roost server. Set ROOST_LLM_OPENAI_BASE_URL + \
             ROOST_LLM_OPENAI_API_KEY or ROOST_LLM_ANTHROPIC_API_KEY.",
        )
    })
}

fn counted(api: LlmApi, outcome: AppResult<Response>) -> Response {
    let response = outcome.into_response();
    let status = response.status().as_u16().to_string();
    metrics::counter!("llm_requests_total", "api" => api.as_str(), "status" => status).increment(1);
    response
}
