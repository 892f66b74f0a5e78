//! Bring your own key: a user's own OpenAI or Anthropic key, checked with one cheap call (the
//! provider's model list), sealed at rest, and then used for that user's model calls in place
//! of the operator's key, with the model the user chose.
//!
//! Agents speak one API (see `settings::agents`). Calls on the OpenAI route go to an OpenAI key
//! as they are, or to an Anthropic key through Anthropic's OpenAI-compatible
//! `/v1/chat/completions`; calls on the Anthropic route need an Anthropic key.

use std::time::Duration;

use axum::http::StatusCode;
use futures_util::StreamExt;
use serde_json::Value;

use super::{LlmApi, Upstream};
use crate::app::App;
use crate::crypto::{SEAL_KEY_VERSION, open, seal};
use crate::db::llm_keys::{self, StoredKey};
use crate::domain::{UserId, now_secs};
use crate::error::{AppError, AppResult};
use crate::secret::SecretString;

/// Longer than any provider key; a paste of something else is refused before any call.
const MAX_KEY_LEN: usize = 400;
const MIN_KEY_LEN: usize = 8;
/// A model list is a few kilobytes; anything much larger is not one.
const MAX_MODEL_LIST_BYTES: usize = 2 * 1024 * 1024;
const MAX_MODELS: usize = 1000;
const MAX_MODEL_ID_LEN: usize = 256;
/// Models named in an error message, so it stays readable.
const MODELS_SHOWN: usize = 20;
const ANTHROPIC_VERSION: &str = "2023-06-01";

/// Shown in the chat when the provider refuses the user's own key on a model call.
pub const KEY_REFUSED: &str = "The provider refused your own API key, so your agent cannot answer. Replace or remove \
                               the key in Settings to chat again.";

/// A key as pasted: trimmed, of a key's length, printable ASCII without spaces. Never printed.
pub struct ProviderKey(SecretString);

impl ProviderKey {
    pub fn parse(provider: LlmApi, raw: &str) -> AppResult<Self> {
        let key = raw.trim();
        let invalid = |message: String| AppError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_llm_key", message);
        if key.is_empty() {
            return Err(invalid(format!("Paste your {} API key.", label(provider))));
        }
        if key.len() > MAX_KEY_LEN {
            return Err(invalid("That is far longer than an API key. Paste the key alone.".into()));
        }
        if key.len() < MIN_KEY_LEN || !key.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(invalid(format!(
                "That does not look like a {} API key. Copy the whole key, without spaces.",
                label(provider)
            )));
        }
        Ok(Self(SecretString::new(key)))
    }

    /// The last four characters, all that is ever shown again.
    pub fn last4(&self) -> String {
        let key = self.0.expose();
        key[key.len() - 4..].to_owned()
    }
}

pub fn parse_provider(raw: &str) -> AppResult<LlmApi> {
    match raw {
        "openai" => Ok(LlmApi::OpenAi),
        "anthropic" => Ok(LlmApi::Anthropic),
        _ => Err(AppError::bad_request("invalid_provider", "The provider must be \"anthropic\" or \"openai\".")),
    }
}

pub fn label(provider: LlmApi) -> &'static str {
    match provider {
        LlmApi::OpenAi => "OpenAI",
        LlmApi::Anthropic => "Anthropic",
    }
}

/// The API this server's agents speak (OpenAI's unless only Anthropic is set up).
fn agents_api(app: &App) -> LlmApi {
    app.llm_api().unwrap_or(LlmApi::OpenAi)
}

/// Whether this server's agents can be served by a key of `provider`.
pub fn check_serves_agents(app: &App, provider: LlmApi) -> AppResult<()> {
    if provider == LlmApi::OpenAi && agents_api(app) == LlmApi::Anthropic {
        return Err(AppError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "provider_not_usable",
            "Agents on this server speak Anthropic's API, so an OpenAI key cannot serve them. Add an Anthropic key \
             instead.",
        ));
    }
    Ok(())
}

/// The models the key may use, from one `GET /models` call to its provider (a free call), or
/// why the key cannot be used. The key never appears in an error or a log line.
pub async fn list_models(app: &App, provider: LlmApi, key: &ProviderKey) -> AppResult<Vec<String>> {
    let settings = app.llm.own_keys();
    let call = match provider {
        LlmApi::OpenAi => {
            app.llm.client().get(format!("{}/models", settings.openai_base_url)).bearer_auth(key.0.expose())
        }
        LlmApi::Anthropic => app
            .llm
            .client()
            .get(format!("{}/v1/models?limit={MAX_MODELS}", settings.anthropic_base_url))
            .header("x-api-key", key.0.expose())
            .header("anthropic-version", ANTHROPIC_VERSION),
    };
    let name = label(provider);
    let answer = tokio::time::timeout(settings.check_timeout, async {
        let answer = call.send().await?;
        let status = answer.status();
        let body = read_limited(answer).await?;
        Ok::<_, reqwest::Error>((status, body))
    })
    .await;
    let (status, body) = match answer {
        Err(_elapsed) => return Err(check_timed_out(name, settings.check_timeout)),
        Ok(Err(e)) if e.is_timeout() => return Err(check_timed_out(name, settings.check_timeout)),
        Ok(Err(e)) => {
            tracing::info!(provider = name, error = %e, "checking a user's own key: the provider could not be reached");
            return Err(AppError::new(
                StatusCode::BAD_GATEWAY,
                "llm_key_check_failed",
                format!("{name} could not be reached, so the key could not be checked. Try again in a minute."),
            ));
        }
        Ok(Ok(answer)) => answer,
    };
    match status.as_u16() {
        200..=299 => {}
        401 | 403 => {
            return Err(AppError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "llm_key_refused",
                format!(
                    "{name} does not accept this key: it is wrong, revoked or lacks access. {}",
                    where_keys(provider)
                ),
            ));
        }
        429 => {
            return Err(AppError::unavailable(
                "llm_key_check_rate_limited",
                format!("{name} asked Roost to slow down, so the key could not be checked. Try again in a minute."),
                60,
            ));
        }
        other => {
            tracing::info!(
                provider = name,
                status = other,
                "checking a user's own key: the provider answered an error"
            );
            return Err(AppError::new(
                StatusCode::BAD_GATEWAY,
                "llm_key_check_failed",
                format!(
                    "{name} answered with an error (status {other}), so the key could not be checked. Try again later."
                ),
            ));
        }
    }
    let models = model_ids(&body);
    if models.is_empty() {
        return Err(AppError::new(
            StatusCode::BAD_GATEWAY,
            "llm_key_check_failed",
            format!("{name} accepted the key but listed no models for it, so it cannot be used here."),
        ));
    }
    Ok(models)
}

fn check_timed_out(name: &str, after: Duration) -> AppError {
    AppError::new(
        StatusCode::GATEWAY_TIMEOUT,
        "llm_key_check_timeout",
        format!(
            "{name} did not answer within {} seconds, so the key could not be checked. Try again in a minute.",
            after.as_secs()
        ),
    )
}

fn where_keys(provider: LlmApi) -> &'static str {
    match provider {
        LlmApi::OpenAi => "Copy a current key from platform.openai.com/api-keys.",
        LlmApi::Anthropic => "Copy a current key from console.anthropic.com (Settings → API keys).",
    }
}

async fn read_limited(answer: reqwest::Response) -> Result<Vec<u8>, reqwest::Error> {
    let mut body = Vec::new();
    let mut chunks = answer.bytes_stream();
    while let Some(chunk) = chunks.next().await {
        let chunk = chunk?;
        if body.len() + chunk.len() > MAX_MODEL_LIST_BYTES {
            break;
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// `data[].id` of either provider's model list, capped.
fn model_ids(body: &[u8]) -> Vec<String> {
    let Ok(json) = serde_json::from_slice::<Value>(body) else { return Vec::new() };
    json["data"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|m| m["id"].as_str())
        .filter(|id| !id.is_empty() && id.len() <= MAX_MODEL_ID_LEN)
        .take(MAX_MODELS)
        .map(str::to_owned)
        .collect()
}

/// The model the user's calls will use: the one they asked for, if the key offers it; else the
/// operator's model, if the key offers that.
pub fn choose_model(
    provider: LlmApi,
    asked: Option<&str>,
    offered: &[String],
    operator: Option<&str>,
) -> AppResult<String> {
    let list = || {
        let mut shown = offered.iter().take(MODELS_SHOWN).cloned().collect::<Vec<_>>().join(", ");
        if offered.len() > MODELS_SHOWN {
            shown.push_str(&format!(" and {} more", offered.len() - MODELS_SHOWN));
        }
        shown
    };
    let invalid = |message: String| AppError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_model", message);
    match asked.map(str::trim).filter(|m| !m.is_empty()) {
        Some(model) if offered.iter().any(|m| m == model) => Ok(model.to_owned()),
        Some(_) => Err(invalid(format!(
            "That model is not available with this {} key. Models it offers: {}.",
            label(provider),
            list()
        ))),
        None => match operator.filter(|m| offered.iter().any(|o| o == m)) {
            Some(model) => Ok(model.to_owned()),
            None => Err(invalid(format!("Choose the model to use with this key. Models it offers: {}.", list()))),
        },
    }
}

fn seal_context(user: &UserId) -> String {
    format!("llm_key:{user}")
}

/// The row to save for a checked key.
pub fn sealed(app: &App, user: &UserId, provider: LlmApi, key: &ProviderKey, model: String) -> StoredKey {
    StoredKey {
        provider: provider.as_str().to_owned(),
        key_sealed: seal(app.secret.expose(), &seal_context(user), key.0.expose().as_bytes()),
        key_version: SEAL_KEY_VERSION,
        last4: key.last4(),
        model,
        created_at: now_secs(),
        failing_since: None,
    }
}

/// A user's own key, ready to send their calls with.
pub struct OwnKey {
    pub provider: LlmApi,
    pub model: String,
    key: SecretString,
    /// Identifies the stored row, so marking it failing cannot touch a newer key.
    sealed: Vec<u8>,
    pub failing: bool,
}

impl OwnKey {
    /// The user's key, if they saved one. A key that no longer opens (the server secret
    /// changed) is an error the user can act on, never a silent fallback to the operator's key.
    pub async fn of(app: &App, user: &UserId) -> AppResult<Option<Self>> {
        let Some(row) = llm_keys::find(&*app.db.conn()?, user).await? else { return Ok(None) };
        // The table's CHECK allows only the two providers.
        let provider = parse_provider(&row.provider)?;
        let Some(plain) = open(app.secret.expose(), row.key_version, &seal_context(user), &row.key_sealed) else {
            tracing::warn!(user_id = %user, "a user's own LLM key does not open with this server secret");
            return Err(AppError::bad_request(
                "llm_key_unreadable",
                "Your own API key can no longer be read on this server. Add it again in Settings, or remove it.",
            ));
        };
        let key =
            String::from_utf8(plain).map_err(|_| AppError::internal(anyhow::anyhow!("an own key is not UTF-8")))?;
        Ok(Some(Self {
            provider,
            model: row.model,
            key: SecretString::new(key),
            sealed: row.key_sealed,
            failing: row.failing_since.is_some(),
        }))
    }

    /// Where a call on `api`'s route goes with this key.
    pub fn upstream(&self, app: &App, api: LlmApi) -> AppResult<Upstream> {
        let settings = app.llm.own_keys();
        let built = match (api, self.provider) {
            (LlmApi::OpenAi, LlmApi::OpenAi) => Upstream::new(LlmApi::OpenAi, &settings.openai_base_url, &self.key),
            // Anthropic's OpenAI SDK compatibility: `{base}/v1/chat/completions`, Bearer key.
            (LlmApi::OpenAi, LlmApi::Anthropic) => {
                Upstream::new(LlmApi::OpenAi, &format!("{}/v1", settings.anthropic_base_url), &self.key)
            }
            (LlmApi::Anthropic, LlmApi::Anthropic) => {
                Upstream::new(LlmApi::Anthropic, &settings.anthropic_base_url, &self.key)
            }
            (LlmApi::Anthropic, LlmApi::OpenAi) => {
                return Err(AppError::bad_request(
                    "llm_key_wrong_provider",
                    "Your agent speaks Anthropic's API, so your own OpenAI key cannot answer it. Add an Anthropic key \
                     in Settings, or remove yours.",
                ));
            }
        };
        built.map_err(|e| AppError::internal(e.context("an own key's upstream")))
    }

    /// The provider refused the key on a model call: the settings page shows it failing.
    pub async fn mark_failing(&self, app: &App, user: &UserId) {
        app.credit_refusals.note(user, KEY_REFUSED);
        if self.failing {
            return;
        }
        tracing::info!(user_id = %user, provider = self.provider.as_str(), "the provider refused a user's own key");
        self.set_failing(app, user, Some(now_secs())).await;
    }

    /// A call with a key that was failing went through: it works again.
    pub async fn mark_working(&self, app: &App, user: &UserId) {
        if self.failing {
            self.set_failing(app, user, None).await;
        }
    }

    async fn set_failing(&self, app: &App, user: &UserId, at: Option<i64>) {
        let written = match app.db.conn() {
            Ok(conn) => llm_keys::set_failing(&conn, user, &self.sealed, at).await,
            Err(e) => Err(e),
        };
        if let Err(e) = written {
            tracing::warn!(error = %e, "recording whether a user's own key works failed");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_trimmed_shaped_and_shown_by_their_last_four() {
        let key = ProviderKey::parse(LlmApi::OpenAi, "  sk-proj-abcd1234wxyz \n").unwrap();
        assert_eq!(key.last4(), "wxyz");
        for bad in ["", "   ", "sk-1", "sk-with a space-1234", &"k".repeat(MAX_KEY_LEN + 1), "sk-ünïcode-1234"] {
            let err = ProviderKey::parse(LlmApi::Anthropic, bad).err().expect(bad);
            assert_eq!(err.code(), "invalid_llm_key");
        }
    }

    #[test]
    fn the_model_is_one_the_key_offers() {
        let offered = vec!["a".to_string(), "b".to_string()];
        assert_eq!(choose_model(LlmApi::OpenAi, Some("b"), &offered, Some("a")).unwrap(), "b");
        assert_eq!(choose_model(LlmApi::OpenAi, None, &offered, Some("a")).unwrap(), "a");
        assert_eq!(choose_model(LlmApi::OpenAi, Some("z"), &offered, Some("a")).err().unwrap().code(), "invalid_model");
        assert_eq!(choose_model(LlmApi::OpenAi, None, &offered, Some("z")).err().unwrap().code(), "invalid_model");
    }

    #[test]
    fn model_lists_of_either_provider_are_read() {
        let openai = br#"{"object":"list","data":[{"id":"gpt-4o","object":"model"},{"id":""}]}"#;
        assert_eq!(model_ids(openai), ["gpt-4o"]);
        let anthropic = br#"{"data":[{"type":"model","id":"claude-x","display_name":"X"}],"has_more":false}"#;
        assert_eq!(model_ids(anthropic), ["claude-x"]);
        assert!(model_ids(b"<html>").is_empty());
    }
}
