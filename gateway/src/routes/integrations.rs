//! Bots connected to the user's agent: connect (checked with the provider, pushed to the agent),
//! list with live status, a test message, DM pairing approvals, the DM policy, disconnect.

use axum::extract::Path;
use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::app::{App, AppState};
use crate::auth::AuthUser;
use crate::crypto::{SEAL_KEY_VERSION, open, seal, sha256_hex};
use crate::db::integrations::{self as db, Integration};
use crate::domain::{UserId, now_secs};
use crate::error::{AppError, AppResult};
use crate::integrations::agent::{Agent, AgentError};
use crate::integrations::status::{self, State};
use crate::integrations::telegram::{CallError, ShapeError, TelegramToken};
use crate::integrations::{Channel, DmPolicy, discord, telegram};
use crate::json::Json;

/// How long a connect waits for the agent to report the bot running.
const STATUS_WAIT: std::time::Duration = std::time::Duration::from_secs(20);
const ALWAYS_ON: &str = "Your agent stays on while a bot is connected.";

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConnectBody {
    token: String,
    dm_policy: Option<String>,
    #[serde(default)]
    allow_from: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyBody {
    dm_policy: String,
    #[serde(default)]
    allow_from: Vec<String>,
}

fn channel(raw: &str) -> AppResult<Channel> {
    Channel::parse(raw).ok_or_else(|| AppError::not_found("There is no such integration; use telegram or discord."))
}

fn invalid(message: impl Into<std::borrow::Cow<'static, str>>) -> AppError {
    AppError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_token", message)
}

fn shape_error(channel: Channel, e: ShapeError) -> AppError {
    match (channel, e) {
        (_, ShapeError::Empty) => invalid(format!("Paste your {} bot's token.", channel.label())),
        (_, ShapeError::TooLong) => invalid("That is far longer than a bot token. Paste the token alone."),
        (Channel::Telegram, ShapeError::Malformed) => invalid(
            "That does not look like a Telegram bot token. BotFather gives one like 123456789:AAE… (digits, a colon, \
             then letters, digits, _ and -).",
        ),
        (Channel::Discord, ShapeError::Malformed) => invalid(
            "That does not look like a Discord bot token. Copy it from the Developer Portal: your application → Bot → \
             Reset Token.",
        ),
    }
}

fn provider_error(channel: Channel, e: CallError) -> AppError {
    let name = channel.label();
    match e {
        CallError::InvalidToken => invalid(match channel {
            Channel::Telegram => {
                "Telegram does not accept this token: it is wrong or was revoked. Copy the current one \
                                  from @BotFather (/mybots → API Token)."
            }
            Channel::Discord => {
                "Discord does not accept this token: it is wrong or was reset. Copy a new one from the \
                                 Developer Portal (Bot → Reset Token)."
            }
        }),
        CallError::RateLimited(secs) => AppError::unavailable(
            "provider_rate_limited",
            format!("{name} asked Roost to slow down. Try again in {secs} seconds."),
            secs,
        ),
        CallError::Unreachable => AppError::new(
            StatusCode::BAD_GATEWAY,
            "provider_unreachable",
            format!("{name} did not answer in time. Try again in a minute."),
        )
        .retry_after(30),
        CallError::Refused(why) => {
            AppError::new(StatusCode::BAD_GATEWAY, "provider_refused", format!("{name} refused the request: {why}"))
        }
    }
}

fn agent_error(channel: Channel, e: AgentError) -> AppError {
    match e {
        AgentError::Starting => AppError::conflict(
            "agent_starting",
            "Your agent is not running yet; Roost is starting it (this takes up to a minute, its stages show on this \
             page). Try again once it is ready.",
        )
        .retry_after(5),
        AgentError::Unreachable(why) => {
            tracing::info!(error = %why, "the agent could not be reached for an integration");
            AppError::conflict(
                "agent_unreachable",
                "Roost could not reach your agent. Try again in a moment, or restart it.",
            )
            .retry_after(10)
        }
        AgentError::Refused(why) => {
            tracing::warn!(error = %why, channel = channel.as_str(), "the agent refused an integration change");
            let hint = match channel {
                Channel::Discord => " Discord bots need the @openclaw/discord plugin on the agent.",
                Channel::Telegram => "",
            };
            AppError::new(
                StatusCode::BAD_GATEWAY,
                "agent_refused",
                format!("Your agent did not accept the {} settings.{hint}", channel.label()),
            )
        }
    }
}

fn unsupported(e: provisioner::ProvisionError) -> AppError {
    match e {
        provisioner::ProvisionError::Unsupported(why) => AppError::conflict("unsupported", why),
        // A Fly machine's sidecar that did not answer or refused: the agent is not reachable.
        provisioner::ProvisionError::Start(why) => {
            tracing::info!(error = %why, "the bot token file could not be written on the agent");
            AppError::conflict(
                "agent_unreachable",
                "Roost could not reach your agent. Try again in a moment, or restart it.",
            )
            .retry_after(10)
        }
        other => AppError::internal(anyhow::anyhow!("writing the bot token file: {other}")),
    }
}

fn context(user: &UserId, channel: Channel) -> String {
    format!("integration:{user}:{}", channel.as_str())
}

fn token_file_name(channel: Channel, token: &str) -> String {
    format!("{}-{}.token", channel.as_str(), &sha256_hex(token.as_bytes())[..16])
}

/// The channel's config block for the agent. The token itself is never in it: only the file it
/// is read from.
fn channel_config(state: &App, row: &Integration, token_path: &str) -> Value {
    let policy = DmPolicy::from_stored(&row.dm_policy).config();
    let mut config = match row.channel.as_str() {
        "telegram" => json!({
            "enabled": true, "tokenFile": token_path, "botToken": null,
            "apiRoot": state.integrations.telegram_api_root_for_agent(),
        }),
        _ => json!({
            "enabled": true,
            "token": { "source": "file", "provider": "roost-discord", "id": "value" },
            "applicationId": row.application_id,
            "intents": { "messageContent": row.message_content.unwrap_or(false) },
        }),
    };
    for (k, v) in policy.as_object().into_iter().flatten() {
        config[k] = v.clone();
    }
    let mut patch = json!({ "channels": { row.channel.as_str(): config } });
    if row.channel == "discord" {
        patch["secrets"] = json!({ "providers": { "roost-discord": { "source": "file", "path": token_path, "mode": "singleValue" } } });
        // An external plugin's channel starts only with the plugin enabled by name; the first
        // time, the agent's gateway restarts in place to load it (see `confirm`).
        patch["plugins"] = json!({ "entries": { "discord": { "enabled": true } } });
    }
    patch
}

fn removal(channel: Channel) -> Value {
    let mut patch = json!({ "channels": { channel.as_str(): null } });
    if channel == Channel::Discord {
        patch["secrets"] = json!({ "providers": { "roost-discord": null } });
        patch["plugins"] = json!({ "entries": { "discord": null } });
    }
    patch
}

/// Waits until the agent reports the channel connected, or an error; answers the last status.
async fn settle(agent: &mut Agent, channel: Channel) -> Result<status::ChannelStatus, AgentError> {
    let deadline = tokio::time::Instant::now() + STATUS_WAIT;
    loop {
        let now = status::read(&agent.status().await?, channel);
        let done = matches!(now.state, State::Connected | State::Error);
        if done || tokio::time::Instant::now() >= deadline {
            return Ok(now);
        }
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    }
}

/// How long a connect waits for an agent whose gateway restarted to load a plugin.
const RESTART_WAIT: std::time::Duration = std::time::Duration::from_secs(90);

/// Reads the channel back and waits for its status. When the patch restarted the agent's
/// gateway (it loads the Discord plugin the first time), the link drops: it is opened again
/// until [`RESTART_WAIT`] runs out. An agent that was itself finishing a start or a restart can
/// answer the patch and then write its older config over it: the patch is made again (up to
/// [`PATCH_ATTEMPTS`] in all) while the read-back lacks the channel.
async fn confirm(
    state: &App,
    user: &UserId,
    agent: &mut Agent,
    channel: Channel,
    patch: &Value,
) -> Result<status::ChannelStatus, AgentError> {
    let deadline = tokio::time::Instant::now() + RESTART_WAIT;
    let mut patches = 1;
    loop {
        let step = async {
            let read_back = agent.channel_config(channel).await?;
            if read_back["enabled"] != true {
                return Ok(None);
            }
            settle(agent, channel).await.map(Some)
        }
        .await;
        match step {
            Ok(Some(live)) => return Ok(live),
            Ok(None) if patches < PATCH_ATTEMPTS => {
                patches += 1;
                tracing::info!(channel = channel.as_str(), patches, "the agent lost a bot's settings; patching again");
                tokio::time::sleep(std::time::Duration::from_secs(1)).await;
                match agent.patch_config(patch).await {
                    Ok(()) | Err(AgentError::Unreachable(_)) => {}
                    Err(e) => return Err(e),
                }
            }
            Ok(None) => return Err(AgentError::Refused("the channel is not enabled after the patch".into())),
            Err(AgentError::Unreachable(_) | AgentError::Starting) if tokio::time::Instant::now() < deadline => {
                agent.reopen(state, user).await;
            }
            Err(e) => return Err(e),
        }
    }
}

/// How many times a connect or disconnect makes its config change before it gives up.
const PATCH_ATTEMPTS: u32 = 3;

#[utoipa::path(post, operation_id = "integrations_connect", path = "/integrations/{channel}", tag = "integrations", params(("channel" = String, Path, description = "`telegram` or `discord`")), request_body(content = crate::openapi::Object, description = "`{token, …}`"), security(("session" = []), ("api_token" = [])), responses((status = 201, description = "Connected", body = crate::openapi::Object), (status = 400, description = "Invalid input", body = crate::openapi::ErrorBody), (status = 422, description = "The provider refused the token, or it is not a bot's", body = crate::openapi::ErrorBody), (status = 401, description = "Not signed in", body = crate::openapi::ErrorBody), (status = 404, description = "Not found", body = crate::openapi::ErrorBody)))]
pub async fn connect(
    state: AppState,
    auth: AuthUser,
    Path(channel_name): Path<String>,
    Json(body): Json<ConnectBody>,
) -> AppResult<(StatusCode, axum::Json<Value>)> {
    let channel = channel(&channel_name)?;
    let user = &auth.user_id;
    if !crate::stripe_sync::plan_allows_channels(&state, user).await? {
        return Err(AppError::forbidden(
            "plan_without_channels",
            "Your plan does not include Telegram or Discord bots. Upgrade on the Usage page to connect one.",
        ));
    }
    let conn = state.db.conn()?;
    let previous = db::find(&conn, user, channel.as_str()).await?;
    let policy = match body.dm_policy.as_deref() {
        Some(name) => {
            DmPolicy::parse(name, &body.allow_from).map_err(|m| AppError::bad_request("invalid_policy", m))?
        }
        None => previous.as_ref().map_or(DmPolicy::Pairing, |p| DmPolicy::from_stored(&p.dm_policy)),
    };
    // Shape first: no request leaves for a token that could re-route it.
    let (token, checked) = match channel {
        Channel::Telegram => {
            let token = TelegramToken::parse(&body.token).map_err(|e| shape_error(channel, e))?;
            state.integrations.check_allowed(user)?;
            let bot = telegram::get_me(&state.integrations, &token).await.map_err(|e| {
                if matches!(e, CallError::InvalidToken | CallError::RateLimited(_)) {
                    state.integrations.check_failed(user);
                }
                provider_error(channel, e)
            })?;
            (
                token.expose().to_string(),
                Checked {
                    id: bot.id,
                    name: bot.name,
                    username: bot.username,
                    application_id: None,
                    message_content: None,
                },
            )
        }
        Channel::Discord => {
            let token = discord::DiscordToken::parse(&body.token).map_err(|e| {
                match discord::misplaced_credential(&body.token) {
                    Some(hint) => invalid(hint),
                    None => shape_error(channel, e),
                }
            })?;
            state.integrations.check_allowed(user)?;
            let bot = discord::check(&state.integrations, &token).await.map_err(|e| {
                if matches!(
                    e,
                    discord::CheckError::UserToken
                        | discord::CheckError::Call(CallError::InvalidToken | CallError::RateLimited(_))
                ) {
                    state.integrations.check_failed(user);
                }
                e
            });
            let bot = bot.map_err(|e| match e {
                discord::CheckError::UserToken => invalid(
                    "This is a user account's token, not a bot's. Roost connects bots only: create one in the Developer \
                     Portal (your application → Bot) and paste its token.",
                ),
                discord::CheckError::Call(e) => provider_error(channel, e),
            })?;
            (
                token.expose().to_string(),
                Checked {
                    name: bot.username.clone(),
                    username: bot.username,
                    id: bot.id,
                    application_id: Some(bot.application_id),
                    message_content: Some(bot.message_content),
                },
            )
        }
    };
    if let Some(owner) = db::owner_of_bot(&conn, channel.as_str(), &checked.id).await?
        && owner != user.as_str()
    {
        return Err(AppError::conflict(
            "bot_taken",
            "This bot is connected to another Roost account. A bot can answer for one agent only: create a new bot for \
             this one.",
        ));
    }

    let mut agent = Agent::open(&state, user, true).await.map_err(|e| agent_error(channel, e))?;
    let file_name = token_file_name(channel, &token);
    let token_path =
        state.machines.put_secret_file(user, &file_name, Some(token.as_bytes())).await.map_err(unsupported)?;
    let now = now_secs();
    let row = Integration {
        channel: channel.as_str().to_string(),
        token_sealed: seal(state.secret.expose(), &context(user, channel), token.as_bytes()),
        key_version: SEAL_KEY_VERSION,
        bot_id: checked.id,
        bot_name: checked.name,
        bot_username: checked.username,
        application_id: checked.application_id,
        message_content: checked.message_content,
        dm_policy: policy.stored(),
        token_file: file_name.clone(),
        owner_chat_id: None,
        created_at: previous.as_ref().map_or(now, |p| p.created_at),
        updated_at: now,
    };
    let patch = channel_config(&state, &row, &token_path);
    let pushed = match agent.patch_config(&patch).await {
        // A restart can cut the link before the patch's answer: reading back tells.
        Ok(()) | Err(AgentError::Unreachable(_)) => confirm(&state, user, &mut agent, channel, &patch).await,
        Err(e) => Err(e),
    };
    let live = match pushed {
        Ok(live) if live.state != State::Error => live,
        failed => {
            // Leave the agent as it was: the previous bot, or none.
            let restore = match &previous {
                Some(p) => {
                    let dir = token_path.strip_suffix(file_name.as_str()).unwrap_or_default();
                    channel_config(&state, p, &format!("{dir}{}", p.token_file))
                }
                None => removal(channel),
            };
            let _ = agent.patch_config(&restore).await;
            agent.close().await;
            if previous.as_ref().is_none_or(|p| p.token_file != file_name) {
                let _ = state.machines.put_secret_file(user, &file_name, None).await;
            }
            return Err(match failed {
                Ok(live) => {
                    AppError::new(StatusCode::BAD_GATEWAY, "bot_failed", format!("{} Nothing was saved.", live.detail))
                }
                Err(e) => agent_error(channel, e),
            });
        }
    };
    agent.close().await;
    if let Err(e) = db::upsert(&conn, user, &row).await {
        let _ = state.machines.put_secret_file(user, &file_name, None).await;
        return Err(if crate::db::is_unique_violation(&e) {
            AppError::conflict("bot_taken", "This bot is connected to another Roost account.")
        } else {
            AppError::internal(e)
        });
    }
    if let Some(p) = previous.filter(|p| p.token_file != file_name) {
        let _ = state.machines.put_secret_file(user, &p.token_file, None).await;
    }
    tracing::info!(user_id = %user, channel = channel.as_str(), "bot connected");
    let row = db::find(&conn, user, channel.as_str())
        .await?
        .ok_or_else(|| AppError::internal(anyhow::anyhow!("row vanished")))?;
    Ok((StatusCode::CREATED, axum::Json(view(channel, Some(&row), Ok(&live)))))
}

struct Checked {
    id: String,
    name: String,
    username: String,
    application_id: Option<String>,
    message_content: Option<bool>,
}

/// Why there is no live status to show for a connected bot.
#[derive(Clone, Copy)]
enum Unread {
    AgentStopped,
    AgentSilent,
}

fn view(channel: Channel, row: Option<&Integration>, live: Result<&status::ChannelStatus, Unread>) -> Value {
    let Some(row) = row else {
        return json!({
            "channel": channel.as_str(), "label": channel.label(), "connected": false,
            "status": { "state": "disconnected", "detail": "No bot is connected." },
        });
    };
    let link = match channel {
        Channel::Telegram => format!("https://t.me/{}", row.bot_username),
        Channel::Discord => format!("https://discord.com/users/{}", row.bot_id),
    };
    let policy = DmPolicy::from_stored(&row.dm_policy);
    let allow_from = match &policy {
        DmPolicy::Allowlist(ids) => ids.clone(),
        _ => Vec::new(),
    };
    let mut warnings = Vec::new();
    if row.message_content == Some(false) {
        warnings.push(
            "The Message Content intent is off, so the bot sees only DMs and messages that mention it. Turn it on in \
             the Developer Portal (Bot → Privileged Gateway Intents → Message Content Intent), then connect again.",
        );
    }
    let status = match live {
        Ok(live) => live.json(),
        Err(Unread::AgentStopped) => {
            json!({ "state": "disconnected", "detail": "Your agent is not running, so the bot is not answering." })
        }
        // Running but not answering (busy mid-reply, or restarting its gateway): not a guess.
        Err(Unread::AgentSilent) => json!({
            "state": "unknown",
            "detail": "Your agent did not say how the bot is doing just now; Roost asks again in a few seconds."
        }),
    };
    json!({
        "channel": channel.as_str(),
        "label": channel.label(),
        "connected": true,
        "bot": { "id": row.bot_id, "name": row.bot_name, "username": row.bot_username, "link": link },
        "invite_url": row.application_id.as_deref().map(discord::invite_url),
        "message_content": row.message_content,
        "warnings": warnings,
        "dm_policy": policy.name(),
        "allow_from": allow_from,
        "can_test": row.owner_chat_id.is_some() || !allow_from.is_empty(),
        "status": status,
        "connected_at": row.created_at,
        "note": ALWAYS_ON,
    })
}

#[utoipa::path(get, operation_id = "integrations_list", path = "/integrations", tag = "integrations", security(("session" = []), ("api_token" = [])), responses((status = 200, description = "Each channel's state", body = crate::openapi::Object), (status = 401, description = "Not signed in", body = crate::openapi::ErrorBody)))]
pub async fn list(state: AppState, auth: AuthUser) -> AppResult<axum::Json<Value>> {
    let user = &auth.user_id;
    let rows = db::list(&*state.db.conn()?, user).await?;
    let mut live = None;
    let mut agent_state = if state.machines.address_if_ready(user).await.is_some() { "running" } else { "stopped" };
    if !rows.is_empty() && agent_state == "running" {
        match Agent::open(&state, user, false).await {
            Ok(mut agent) => {
                live = agent.status().await.ok();
                agent.close().await;
            }
            Err(e) => {
                tracing::debug!(user_id = %user, error = %e, "no live channel status");
                agent_state = "unreachable";
            }
        }
    }
    let channels: Vec<Value> = Channel::ALL
        .iter()
        .map(|&c| {
            let row = rows.iter().find(|r| r.channel == c.as_str());
            let status = match &live {
                Some(live) => Ok(status::read(live, c)),
                None if agent_state == "stopped" => Err(Unread::AgentStopped),
                None => Err(Unread::AgentSilent),
            };
            view(c, row, status.as_ref().map_err(|why| *why))
        })
        .collect();
    Ok(axum::Json(json!({
        "plan_allows_channels": crate::stripe_sync::plan_allows_channels(&state, user).await?,
        "agent": { "state": agent_state },
        "note": ALWAYS_ON,
        "channels": channels,
    })))
}

async fn owned(state: &App, user: &UserId, channel: Channel) -> AppResult<Integration> {
    db::find(&*state.db.conn()?, user, channel.as_str())
        .await?
        .ok_or_else(|| AppError::not_found(format!("No {} bot is connected.", channel.label())))
}

#[utoipa::path(post, operation_id = "integrations_test", path = "/integrations/{channel}/test", tag = "integrations", params(("channel" = String, Path, description = "`telegram` or `discord`")), security(("session" = []), ("api_token" = [])), responses((status = 200, description = "The check's result", body = crate::openapi::Object), (status = 400, description = "Invalid input", body = crate::openapi::ErrorBody), (status = 401, description = "Not signed in", body = crate::openapi::ErrorBody), (status = 404, description = "Not found", body = crate::openapi::ErrorBody)))]
pub async fn test(state: AppState, auth: AuthUser, Path(channel_name): Path<String>) -> AppResult<axum::Json<Value>> {
    let channel = channel(&channel_name)?;
    let user = &auth.user_id;
    let row = owned(&state, user, channel).await?;
    let policy = DmPolicy::from_stored(&row.dm_policy);
    let chat = row.owner_chat_id.clone().or_else(|| match &policy {
        DmPolicy::Allowlist(ids) => ids.first().cloned(),
        _ => None,
    });
    let Some(chat) = chat else {
        return Err(AppError::conflict(
            "no_chat_yet",
            format!(
                "Send your bot a message in {} first, then approve your request on this page; the test message goes \
                 to that chat.",
                channel.label()
            ),
        ));
    };
    state.integrations.calls.check(user)?;
    let sealed_for = context(user, channel);
    let token = open(state.secret.expose(), row.key_version, &sealed_for, &row.token_sealed)
        .and_then(|t| String::from_utf8(t).ok())
        .ok_or_else(|| AppError::internal(anyhow::anyhow!("a sealed bot token did not open")))?;
    let text = format!("Hello from Roost: {} is connected to your agent. Message me here to talk to it.", row.bot_name);
    let sent = match channel {
        Channel::Telegram => {
            let token =
                TelegramToken::parse(&token).map_err(|_| AppError::internal(anyhow::anyhow!("stored token shape")))?;
            telegram::send_message(&state.integrations, &token, &chat, &text).await
        }
        Channel::Discord => {
            let token = discord::DiscordToken::parse(&token)
                .map_err(|_| AppError::internal(anyhow::anyhow!("stored token shape")))?;
            discord::send_dm(&state.integrations, &token, &chat, &text).await
        }
    };
    sent.map_err(|e| provider_error(channel, e))?;
    Ok(axum::Json(json!({ "sent": true, "text": text })))
}

#[utoipa::path(get, operation_id = "integrations_pairing", path = "/integrations/{channel}/pairing", tag = "integrations", params(("channel" = String, Path, description = "`telegram` or `discord`")), security(("session" = []), ("api_token" = [])), responses((status = 200, description = "Pending DM pairing requests", body = crate::openapi::Object), (status = 400, description = "Invalid input", body = crate::openapi::ErrorBody), (status = 401, description = "Not signed in", body = crate::openapi::ErrorBody), (status = 404, description = "Not found", body = crate::openapi::ErrorBody)))]
pub async fn pairing(
    state: AppState,
    auth: AuthUser,
    Path(channel_name): Path<String>,
) -> AppResult<axum::Json<Value>> {
    let channel = channel(&channel_name)?;
    let user = &auth.user_id;
    owned(&state, user, channel).await?;
    let mut agent = Agent::open(&state, user, false).await.map_err(|e| agent_error(channel, e))?;
    let answer = agent.pairing_requests(channel).await;
    agent.close().await;
    let answer = answer.map_err(|e| agent_error(channel, e))?;
    let requests: Vec<Value> = answer["requests"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|r| r["channel"].as_str().is_none_or(|c| c == channel.as_str()))
        .take(20)
        .map(|r| {
            // `senderLabel` names the id's kind ("telegramUserId"); a name, when known, is in metadata.
            let meta = &r["metadata"];
            let name = ["displayName", "name", "firstName", "first_name", "username"]
                .iter()
                .find_map(|k| meta[*k].as_str())
                .map(|n| n.chars().take(64).collect::<String>());
            json!({
                "id": r["requestId"], "sender_id": r["senderId"], "sender": name,
                "created_at": r["createdAt"], "expires_at": r["expiresAt"],
            })
        })
        .collect();
    Ok(axum::Json(json!({ "requests": requests })))
}

#[utoipa::path(post, operation_id = "integrations_decide", path = "/integrations/{channel}/pairing/{request}/{action}", tag = "integrations", params(("channel" = String, Path, description = "`telegram` or `discord`"), ("request" = String, Path, description = "The request id"), ("action" = String, Path, description = "`approve` or `reject`")), security(("session" = []), ("api_token" = [])), responses((status = 200, description = "Approved or rejected", body = crate::openapi::Object), (status = 400, description = "Invalid input", body = crate::openapi::ErrorBody), (status = 401, description = "Not signed in", body = crate::openapi::ErrorBody), (status = 404, description = "Not found", body = crate::openapi::ErrorBody)))]
pub async fn decide(
    state: AppState,
    auth: AuthUser,
    Path((channel_name, request_id, action)): Path<(String, String, String)>,
) -> AppResult<axum::Json<Value>> {
    let channel = channel(&channel_name)?;
    let user = &auth.user_id;
    let approve = match action.as_str() {
        "approve" => true,
        "reject" => false,
        _ => return Err(AppError::not_found("A request is approved or rejected.")),
    };
    if request_id.is_empty() || request_id.len() > 128 || !request_id.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(AppError::bad_request("invalid_request_id", "That is not a pairing request id."));
    }
    owned(&state, user, channel).await?;
    let mut agent = Agent::open(&state, user, false).await.map_err(|e| agent_error(channel, e))?;
    let done = if approve {
        agent.approve(channel, &request_id).await
    } else {
        agent.dismiss(channel, &request_id).await.map(|()| None)
    };
    agent.close().await;
    let sender = done.map_err(|e| match e {
        AgentError::Refused(_) => {
            AppError::not_found("That request is no longer pending (it was handled or expired after an hour).")
        }
        other => agent_error(channel, other),
    })?;
    if let Some(sender) = &sender {
        // The first person the user lets in is, almost always, the user: test messages go there.
        db::set_owner_chat(&*state.db.conn()?, user, channel.as_str(), sender).await?;
    }
    Ok(axum::Json(json!({ "approved": approve, "sender_id": sender })))
}

#[utoipa::path(put, operation_id = "integrations_set_policy", path = "/integrations/{channel}/policy", tag = "integrations", params(("channel" = String, Path, description = "`telegram` or `discord`")), request_body(content = crate::openapi::Object, description = "`{dm_policy, …}`"), security(("session" = []), ("api_token" = [])), responses((status = 200, description = "The saved policy", body = crate::openapi::Object), (status = 400, description = "Invalid input", body = crate::openapi::ErrorBody), (status = 401, description = "Not signed in", body = crate::openapi::ErrorBody), (status = 404, description = "Not found", body = crate::openapi::ErrorBody)))]
pub async fn set_policy(
    state: AppState,
    auth: AuthUser,
    Path(channel_name): Path<String>,
    Json(body): Json<PolicyBody>,
) -> AppResult<axum::Json<Value>> {
    let channel = channel(&channel_name)?;
    let user = &auth.user_id;
    let mut row = owned(&state, user, channel).await?;
    let policy =
        DmPolicy::parse(&body.dm_policy, &body.allow_from).map_err(|m| AppError::bad_request("invalid_policy", m))?;
    let mut agent = Agent::open(&state, user, true).await.map_err(|e| agent_error(channel, e))?;
    row.dm_policy = policy.stored();
    let mut patch = json!({ "channels": { channel.as_str(): policy.config() } });
    if policy == DmPolicy::Pairing {
        patch["channels"][channel.as_str()]["allowFrom"] = Value::Null;
    }
    let pushed = agent.patch_config(&patch).await;
    agent.close().await;
    pushed.map_err(|e| agent_error(channel, e))?;
    db::set_dm_policy(&*state.db.conn()?, user, channel.as_str(), &row.dm_policy, now_secs()).await?;
    Ok(axum::Json(json!({ "dm_policy": policy.name() })))
}

/// Removes the channel from the agent (when it runs; otherwise its next start drops it, since
/// the token file is gone) and deletes the stored token.
#[utoipa::path(delete, operation_id = "integrations_disconnect", path = "/integrations/{channel}", tag = "integrations", params(("channel" = String, Path, description = "`telegram` or `discord`")), security(("session" = []), ("api_token" = [])), responses((status = 204, description = "Disconnected"), (status = 400, description = "Invalid input", body = crate::openapi::ErrorBody), (status = 401, description = "Not signed in", body = crate::openapi::ErrorBody), (status = 404, description = "Not found", body = crate::openapi::ErrorBody)))]
pub async fn disconnect(state: AppState, auth: AuthUser, Path(channel_name): Path<String>) -> AppResult<StatusCode> {
    let channel = channel(&channel_name)?;
    let user = &auth.user_id;
    let row = owned(&state, user, channel).await?;
    // Whether the agent may still hold the channel: then, once it is up, it is removed from it.
    let mut unconfirmed = false;
    match Agent::open(&state, user, false).await {
        Ok(mut agent) => {
            let removed = remove_and_check(&state, user, &mut agent, channel, REMOVE_WAIT, None).await;
            agent.close().await;
            match removed {
                Ok(()) => {}
                // The agent's gateway went away mid-removal (a restart): the token file still
                // goes now, and the watch below finishes the removal once it is back.
                Err(AgentError::Unreachable(_) | AgentError::Starting) => unconfirmed = true,
                Err(e) => return Err(agent_error(channel, e)),
            }
        }
        // An agent starting now may have read its config (the channel in it) before the token
        // file goes.
        Err(AgentError::Starting) => unconfirmed = true,
        Err(e) => return Err(agent_error(channel, e)),
    }
    state.machines.put_secret_file(user, &row.token_file, None).await.map_err(unsupported)?;
    db::delete(&*state.db.conn()?, user, channel.as_str()).await?;
    if unconfirmed {
        tokio::spawn(remove_once_up(state.clone(), user.clone(), channel, row.token_file.clone()));
    }
    tracing::info!(user_id = %user, channel = channel.as_str(), "bot disconnected");
    Ok(StatusCode::NO_CONTENT)
}

/// Removes the channel from the agent's config and reads it back: an agent busy restarting its
/// gateway (after an earlier change) can answer a patch and then write its older config over
/// it, so the removal is made again until the read-back shows it gone. A patch can itself
/// restart the gateway and drop the link: the link is opened again until `within` runs out.
///
/// With `only_file`, only a channel still reading that token file is removed: one the user
/// connected again since (a new bot's file, being patched in now) is left alone, and the agent
/// is read before anything is patched.
async fn remove_and_check(
    state: &App,
    user: &UserId,
    agent: &mut Agent,
    channel: Channel,
    within: std::time::Duration,
    only_file: Option<&str>,
) -> Result<(), AgentError> {
    let deadline = tokio::time::Instant::now() + within;
    let mut patches = 0;
    let mut patch_next = only_file.is_none();
    let gone = |config: &Value| {
        config.is_null()
            || only_file.is_some_and(|file| !config["tokenFile"].as_str().is_some_and(|path| path.ends_with(file)))
    };
    loop {
        let step = async {
            if patch_next {
                agent.patch_config(&removal(channel)).await?;
                tokio::time::sleep(std::time::Duration::from_millis(500)).await;
            }
            agent.channel_config(channel).await
        }
        .await;
        match step {
            Ok(config) if gone(&config) => return Ok(()),
            Ok(_) => {
                patches += 1;
                if patches >= PATCH_ATTEMPTS {
                    return Err(AgentError::Refused(
                        "the channel stayed in the agent's config after its removal".into(),
                    ));
                }
                tracing::info!(
                    channel = channel.as_str(),
                    patches,
                    "the agent still lists a removed bot; removing it again"
                );
                patch_next = true;
                tokio::time::sleep(std::time::Duration::from_secs(1)).await;
            }
            Err(AgentError::Unreachable(_) | AgentError::Starting) if tokio::time::Instant::now() < deadline => {
                // Whether the patch landed is unknown: the fresh link reads before it patches.
                patch_next = false;
                agent.reopen(state, user).await;
            }
            Err(e) => return Err(e),
        }
    }
}

/// How long a disconnect waits for the agent's gateway to come back within its request (which
/// has 30 s in all); past it, [`remove_once_up`] finishes the removal.
const REMOVE_WAIT: std::time::Duration = std::time::Duration::from_secs(20);

/// How long a disconnect watches for a starting agent to come up (a Fly start can take minutes).
const REMOVE_WATCH: std::time::Duration = std::time::Duration::from_secs(300);

/// Once the agent is up, removes a disconnected channel from it (unless it was connected again
/// meanwhile), retrying until the read-back shows it gone or [`REMOVE_WATCH`] runs out.
async fn remove_once_up(state: AppState, user: UserId, channel: Channel, token_file: String) {
    let deadline = tokio::time::Instant::now() + REMOVE_WATCH;
    let mut file_deleted = false;
    while tokio::time::Instant::now() < deadline {
        if state.machines.address_if_ready(&user).await.is_some() {
            let reconnected = match state.db.conn() {
                Ok(conn) => db::find(&conn, &user, channel.as_str()).await.map(|r| r.is_some()).unwrap_or(true),
                Err(_) => true,
            };
            if reconnected {
                return;
            }
            // A Fly machine that was down kept the file on its volume; local deletes were done.
            if !file_deleted {
                match state.machines.put_secret_file(&user, &token_file, None).await {
                    Ok(_) => file_deleted = true,
                    Err(e) => {
                        tracing::info!(user_id = %user, error = %e, "deleting a disconnected bot's token file failed")
                    }
                }
            }
            if let Ok(mut agent) = Agent::open(&state, &user, false).await {
                let removed =
                    remove_and_check(&state, &user, &mut agent, channel, REMOVE_WAIT, Some(&token_file)).await;
                agent.close().await;
                match removed {
                    Ok(()) => return,
                    Err(e) => {
                        tracing::info!(user_id = %user, error = %e, "removing a disconnected bot from the agent failed; trying again")
                    }
                }
            }
        }
        tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    }
    tracing::warn!(user_id = %user, channel = channel.as_str(), "a disconnected bot could not be removed from the agent");
}
