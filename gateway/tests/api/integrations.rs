//! Bot integrations against the fake Telegram and Discord APIs, with the simulated agent: token
//! checks, bad input, rate limits, plans, cross-user isolation, and no token in logs.

use std::process::Stdio;
use std::time::Duration;

use fakes::discord::{FakeDiscord, MESSAGE_CONTENT_LIMITED};
use fakes::telegram::{FakeTelegram, Fault};
use gateway::integrations::{Integrations, discord};
use gateway::settings::IntegrationSettings;
use serde_json::{Value, json};
use tokio::io::AsyncReadExt;

use crate::helpers::{TestApp, contains, error_code, plans_file, wait_until};

async fn app_with(telegram: &FakeTelegram, extra: &[&str]) -> TestApp {
    let base = telegram.base_url();
    let mut flags = vec!["--telegram-api-base", base.as_str(), "--no-prewarm"];
    flags.extend_from_slice(extra);
    TestApp::spawn_with(&flags).await
}

async fn connect(app: &TestApp, cookie: &str, token: &str) -> reqwest::Response {
    app.send_as(cookie, reqwest::Method::POST, "/api/integrations/telegram", Some(&json!({ "token": token }))).await
}

#[tokio::test]
async fn bad_tokens_get_a_clear_4xx_before_any_call_and_nothing_is_stored() {
    let telegram = FakeTelegram::spawn().await;
    let app = app_with(&telegram, &[]).await;
    let (cookie, _) = app.signed_up_cookie("bad-input@example.com").await;
    let good = telegram.add_bot("good_bot");
    let ten_kb = "1".repeat(10 * 1024);
    for bad in [
        "".to_string(),
        "   ".to_string(),
        ten_kb,
        format!("{good}/../getMe"),
        format!("{good}/sendMessage"),
        format!("{good}?x=1"),
        format!("{good}#frag"),
        "123:short".to_string(),
    ] {
        let (status, code) = error_code(connect(&app, &cookie, &bad).await).await;
        assert_eq!((status, code.as_str()), (422, "invalid_token"), "{bad:.40}");
    }
    assert!(telegram.all_calls().is_empty(), "no malformed token reached the Bot API");

    // A token of the right shape that Telegram does not know, and a revoked one.
    let unknown = "999999999:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";
    let (status, code) = error_code(connect(&app, &cookie, unknown).await).await;
    assert_eq!((status, code.as_str()), (422, "invalid_token"));
    let revoked = telegram.add_bot("revoked_bot");
    telegram.revoke(&revoked);
    let res = connect(&app, &cookie, &revoked).await;
    let body = res.text().await.unwrap();
    assert!(body.contains("revoked") && !body.contains(&revoked), "{body}");

    // Telegram's flood control and a hung API become answers the user can act on.
    telegram.fail_next("getMe", Fault::TooManyRequests { retry_after: 41 });
    let res = connect(&app, &cookie, &good).await;
    assert_eq!(res.status(), 503);
    assert_eq!(res.headers()["retry-after"], "41");
    telegram.fail_next("getMe", Fault::Hang(Duration::from_secs(15)));
    let (status, code) = error_code(connect(&app, &cookie, &good).await).await;
    assert_eq!((status, code.as_str()), (502, "provider_unreachable"));

    // A valid bot, but the agent is not running: 409, the start is under way, nothing stored.
    let (status, code) = error_code(connect(&app, &cookie, &good).await).await;
    assert_eq!((status, code.as_str()), (409, "agent_starting"));
    assert_eq!(app.count("integrations").await, 0);
    let listed = app.json_as(&cookie, "/api/integrations").await;
    assert_eq!(listed["channels"][0]["connected"], false);
    assert_eq!(listed["note"], "Your agent stays on while a bot is connected.");
}

#[tokio::test]
async fn a_plan_without_channels_refuses_and_says_why() {
    let telegram = FakeTelegram::spawn().await;
    let dir = tempfile::tempdir().unwrap();
    let plans = plans_file(dir.path(), 100, "m");
    let app = app_with(&telegram, &["--plans", &plans, "--llm-model", "m"]).await;
    let (cookie, _) = app.signed_up_cookie("no-channels@example.com").await;
    let res = connect(&app, &cookie, &telegram.add_bot("plan_bot")).await;
    assert_eq!(res.status(), 403);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["error"]["code"], "plan_without_channels");
    assert!(body["error"]["message"].as_str().unwrap().contains("Upgrade"));
    assert!(telegram.all_calls().is_empty());
    assert_eq!(app.json_as(&cookie, "/api/integrations").await["plan_allows_channels"], false);
}

#[tokio::test]
async fn refused_token_checks_are_limited_per_user() {
    let telegram = FakeTelegram::spawn().await;
    let app = app_with(&telegram, &["--bot-check-failures-per-hour", "2"]).await;
    let (alice, _) = app.signed_up_cookie("limit-a@example.com").await;
    let (bob, _) = app.signed_up_cookie("limit-b@example.com").await;
    let good = telegram.add_bot("limited_bot");
    // Checks that pass do not count: the page retries while the agent wakes.
    for _ in 0..4 {
        assert_eq!(connect(&app, &alice, &good).await.status(), 409, "checked, then the agent is starting");
    }
    let unknown = "999999999:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";
    for _ in 0..2 {
        assert_eq!(connect(&app, &alice, unknown).await.status(), 422);
    }
    let getme_before = telegram.calls(&good).len();
    let res = connect(&app, &alice, &good).await;
    assert_eq!(res.status(), 429);
    assert!(res.headers().contains_key("retry-after"));
    let body: Value = res.json().await.unwrap();
    assert!(body["error"]["message"].as_str().unwrap().contains("refused for this account"), "{body}");
    assert_eq!(telegram.calls(&good).len(), getme_before, "the limited check never reached Telegram");
    assert_eq!(connect(&app, &bob, unknown).await.status(), 422, "another user has an allowance of their own");
}

/// A row for `user`, as a successful connect stores it.
async fn stored_bot(app: &TestApp, user: &str, bot_id: &str, token: &str) {
    let sealed =
        gateway::crypto::seal(app.state.secret.expose(), &format!("integration:{user}:telegram"), token.as_bytes());
    let conn = app.state.db.conn().unwrap();
    conn.execute(
        "INSERT INTO integrations (user_id, channel, token_sealed, key_version, bot_id, bot_name, bot_username,
           dm_policy, token_file, owner_chat_id, created_at, updated_at)
         VALUES (?1, 'telegram', ?2, 1, ?3, 'Alice bot', 'alice_bot', 'pairing', 'telegram-x.token', '777', 1, 1)",
        libsql::params![user, sealed, bot_id],
    )
    .await
    .unwrap();
}

#[tokio::test]
async fn another_user_cannot_read_change_test_or_delete_your_bot() {
    let telegram = FakeTelegram::spawn().await;
    let app = app_with(&telegram, &[]).await;
    let (alice, alice_id) = app.signed_up_cookie("owner@example.com").await;
    let (bob, _) = app.signed_up_cookie("other@example.com").await;
    let token = telegram.add_bot("alice_bot");
    let bot_id = token.split(':').next().unwrap();
    stored_bot(&app, &alice_id, bot_id, &token).await;

    let mine = app.json_as(&alice, "/api/integrations").await;
    assert_eq!(mine["channels"][0]["connected"], true);
    assert_eq!(mine["channels"][0]["bot"]["link"], "https://t.me/alice_bot");
    assert!(!mine.to_string().contains(&token), "the token is never answered");
    let theirs = app.json_as(&bob, "/api/integrations").await;
    assert_eq!(theirs["channels"][0]["connected"], false, "{theirs}");
    assert!(!theirs.to_string().contains("alice_bot"));

    for (method, path, body) in [
        (reqwest::Method::DELETE, "/api/integrations/telegram", None),
        (reqwest::Method::POST, "/api/integrations/telegram/test", None),
        (reqwest::Method::GET, "/api/integrations/telegram/pairing", None),
        (reqwest::Method::POST, "/api/integrations/telegram/pairing/r1/approve", None),
        (reqwest::Method::PUT, "/api/integrations/telegram/policy", Some(json!({ "dm_policy": "open" }))),
    ] {
        let res = app.send_as(&bob, method.clone(), path, body.as_ref()).await;
        assert_eq!(res.status(), 404, "{method} {path}");
    }
    // Bob cannot take Alice's bot either.
    let (status, code) = error_code(connect(&app, &bob, &token).await).await;
    assert_eq!((status, code.as_str()), (409, "bot_taken"));
    assert!(telegram.sent_messages(&token).is_empty(), "nothing was sent for Bob");
    assert_eq!(app.count("integrations").await, 1, "Alice's bot is untouched");

    // Alice's own test message opens her sealed token and reaches her chat.
    let res = app.send_as(&alice, reqwest::Method::POST, "/api/integrations/telegram/test", None).await;
    assert_eq!(res.status(), 200);
    let sent = telegram.sent_messages(&token);
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0]["chat_id"], "777");
}

fn integrations_at(telegram: &str, discord: &str) -> Integrations {
    Integrations::new(IntegrationSettings {
        telegram_api_base: telegram.into(),
        discord_api_base: discord.into(),
        failures_per_hour: 100,
    })
    .unwrap()
}

#[tokio::test]
async fn discord_tokens_must_be_bots_and_the_intent_is_read_from_the_application() {
    let fake = FakeDiscord::spawn().await;
    let api = integrations_at("http://127.0.0.1:9", &fake.base_url());
    let with_content = fake.add_bot("content", MESSAGE_CONTENT_LIMITED);
    let without = fake.add_bot("plain", 1 << 13);
    let user = fake.add_user_token("a-person");

    let bot = discord::check(&api, &discord::DiscordToken::parse(&with_content).unwrap()).await.unwrap();
    assert!(bot.message_content);
    assert!(discord::invite_url(&bot.application_id).contains(&format!("client_id={}", bot.application_id)));
    let bot = discord::check(&api, &discord::DiscordToken::parse(&without).unwrap()).await.unwrap();
    assert!(!bot.message_content, "PRESENCE_LIMITED alone is not message content");
    assert!(matches!(
        discord::check(&api, &discord::DiscordToken::parse(&user).unwrap()).await,
        Err(discord::CheckError::UserToken)
    ));
    fake.revoke(&without);
    assert!(matches!(
        discord::check(&api, &discord::DiscordToken::parse(&without).unwrap()).await,
        Err(discord::CheckError::Call(gateway::integrations::telegram::CallError::InvalidToken))
    ));
    let token = discord::DiscordToken::parse(&with_content).unwrap();
    discord::send_dm(&api, &token, "4242", "hi").await.unwrap();
    assert_eq!(fake.sent_dms(), vec![("4242".to_string(), "hi".to_string())]);
    fake.fail_next(fakes::discord::Fault::TooManyRequests { retry_after: 64.57 });
    assert!(matches!(
        discord::check(&api, &discord::DiscordToken::parse(&with_content).unwrap()).await,
        Err(discord::CheckError::Call(gateway::integrations::telegram::CallError::RateLimited(65)))
    ));
}

#[tokio::test]
async fn discord_user_tokens_and_misplaced_secrets_are_explained() {
    let telegram = FakeTelegram::spawn().await;
    let discord = FakeDiscord::spawn().await;
    let base = discord.base_url();
    let app = app_with(&telegram, &["--discord-api-base", &base]).await;
    let (cookie, _) = app.signed_up_cookie("discord@example.com").await;
    let post = |token: String| {
        let (app, cookie) = (&app, &cookie);
        async move {
            let res = app
                .send_as(cookie, reqwest::Method::POST, "/api/integrations/discord", Some(&json!({ "token": token })))
                .await;
            let status = res.status().as_u16();
            (status, res.json::<Value>().await.unwrap())
        }
    };
    let (status, body) = post(discord.add_user_token("someone")).await;
    assert_eq!(status, 422);
    assert!(body["error"]["message"].as_str().unwrap().contains("user account"), "{body}");
    let (status, body) = post("a".repeat(32)).await;
    assert_eq!(status, 422);
    assert!(body["error"]["message"].as_str().unwrap().contains("client secret"), "{body}");
    let (status, body) = post(discord.add_bot("ok", 0)).await;
    assert_eq!((status, body["error"]["code"].as_str()), (409, Some("agent_starting")), "{body}");
    assert_eq!(app.count("integrations").await, 0);
}

/// The real binary at debug level through checks that put the token in URLs and errors.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bot_tokens_never_reach_a_log_line() {
    let telegram = FakeTelegram::spawn().await;
    let token = telegram.add_bot("logged_bot");
    let revoked = telegram.add_bot("revoked_logged_bot");
    telegram.revoke(&revoked);
    let dir = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let origin = format!("http://127.0.0.1:{port}");
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_roost"))
        .args(["serve", "--listen", &format!("127.0.0.1:{port}"), "--agent-provider", "fake"])
        .args(["--telegram-api-base", &telegram.base_url()])
        .arg("--data-dir")
        .arg(dir.path())
        .env("RUST_LOG", "debug")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let http = reqwest::Client::builder().cookie_store(true).build().unwrap();
    wait_until("roost serve answers", || async {
        http.get(format!("{origin}/readyz")).send().await.is_ok_and(|r| r.status() == 200)
    })
    .await;
    let signup = http
        .post(format!("{origin}/api/auth/signup"))
        .header("origin", &origin)
        .json(&json!({ "email": "logs@example.com", "password": crate::helpers::PASSWORD }))
        .send()
        .await
        .unwrap();
    assert_eq!(signup.status(), 201);
    let mut answers = String::new();
    telegram.fail_next("getMe", Fault::ServerError);
    telegram.fail_next("getMe", Fault::Hang(Duration::from_secs(12)));
    for t in [&token, &token, &revoked, &token, &token] {
        let res = http
            .post(format!("{origin}/api/integrations/telegram"))
            .header("origin", &origin)
            .json(&json!({ "token": t }))
            .send()
            .await
            .unwrap();
        answers.push_str(&res.text().await.unwrap());
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    child.start_kill().unwrap();
    let (mut out, mut err) = (Vec::new(), Vec::new());
    child.stdout.take().unwrap().read_to_end(&mut out).await.unwrap();
    child.stderr.take().unwrap().read_to_end(&mut err).await.unwrap();
    let logs = [out, err].concat();
    assert!(contains(&logs, "the Telegram Bot API did not answer"), "the failures were logged");
    for secret in [&token, &revoked] {
        assert!(!contains(&logs, secret), "a token is in the log");
        assert!(!answers.contains(secret.as_str()), "a token is in an answer");
        let secret_part = secret.split(':').nth(1).unwrap();
        assert!(!contains(&logs, secret_part), "part of a token is in the log");
    }
}

/// The fake Discord gateway speaks the protocol the Discord plugin relies on, and closes the way
/// Discord does for a bad token (4004) and a Message Content intent the app lacks (4014).
#[tokio::test]
async fn the_fake_discord_gateway_identifies_heartbeats_delivers_dms_and_closes_like_discord() {
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message;
    let discord = FakeDiscord::spawn().await;
    let token = discord.add_bot("gw_bot", fakes::discord::MESSAGE_CONTENT);
    let no_content = discord.add_bot("plain_bot", 0);
    let info: Value = reqwest::Client::new()
        .get(format!("{}/gateway/bot", discord.base_url()))
        .header("authorization", format!("Bot {token}"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let url = info["url"].as_str().unwrap().to_string();
    assert!(url.starts_with("ws://127.0.0.1:") && info["shards"] == 1, "{info}");

    type Ws = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;
    async fn next(ws: &mut Ws) -> Message {
        tokio::time::timeout(Duration::from_secs(5), ws.next()).await.unwrap().unwrap().unwrap()
    }
    async fn json_of(ws: &mut Ws) -> Value {
        match next(ws).await {
            Message::Text(t) => serde_json::from_str(&t).unwrap(),
            other => panic!("not a text frame: {other:?}"),
        }
    }
    async fn open(url: &str) -> Ws {
        let (mut ws, _) = tokio_tungstenite::connect_async(format!("{url}/?v=10&encoding=json")).await.unwrap();
        let hello = json_of(&mut ws).await;
        assert_eq!(hello["op"], 10);
        assert!(hello["d"]["heartbeat_interval"].as_u64().unwrap() > 1000);
        ws
    }
    async fn identify(ws: &mut Ws, token: &str, intents: u64) {
        let frame = json!({ "op": 2, "d": { "token": token, "intents": intents, "properties": {} } });
        ws.send(Message::Text(frame.to_string().into())).await.unwrap();
    }
    async fn close_code(ws: &mut Ws) -> u16 {
        match next(ws).await {
            Message::Close(Some(frame)) => frame.code.into(),
            other => panic!("not a close: {other:?}"),
        }
    }
    const CONTENT_INTENT: u64 = 1 << 15;

    let mut ws = open(&url).await;
    identify(&mut ws, &token, CONTENT_INTENT | 1 << 12).await;
    let ready = json_of(&mut ws).await;
    assert_eq!((ready["op"].as_u64(), ready["t"].as_str()), (Some(0), Some("READY")), "{ready}");
    assert_eq!(ready["d"]["user"]["username"], "gw_bot");
    ws.send(Message::Text(json!({ "op": 1, "d": ready["s"] }).to_string().into())).await.unwrap();
    assert_eq!(json_of(&mut ws).await["op"], 11, "a heartbeat is acknowledged");
    assert_eq!(discord.gateway_open(&token), 1);
    assert_eq!(discord.deliver_dm(&token, "4242", "Ada", "hi"), 1);
    let dm = json_of(&mut ws).await;
    assert_eq!(dm["t"], "MESSAGE_CREATE");
    assert_eq!((dm["d"]["content"].as_str(), dm["d"]["author"]["id"].as_str()), (Some("hi"), Some("4242")));
    assert!(dm["d"].get("guild_id").is_none(), "a DM has no guild");
    assert!(dm["s"].as_u64() > ready["s"].as_u64());
    // A session can be resumed on a new connection.
    let session = ready["d"]["session_id"].as_str().unwrap().to_string();
    drop(ws);
    let mut ws = open(&url).await;
    let resume = json!({ "op": 6, "d": { "token": token, "session_id": session, "seq": 2 } });
    ws.send(Message::Text(resume.to_string().into())).await.unwrap();
    assert_eq!(json_of(&mut ws).await["t"], "RESUMED");

    let mut bad = open(&url).await;
    identify(&mut bad, "MTk4NjIyNDgzNDcxOTI1MjQ4.Cl2FMQ.ZnCjm1XVW7vRze4b7Cq4se7kKWs", 0).await;
    assert_eq!(close_code(&mut bad).await, 4004, "an unknown token");
    let mut intents = open(&url).await;
    identify(&mut intents, &no_content, CONTENT_INTENT).await;
    assert_eq!(close_code(&mut intents).await, 4014, "Message Content without the app's intent");
    discord.close_next_identify(4014);
    let mut forced = open(&url).await;
    identify(&mut forced, &token, 0).await;
    assert_eq!(close_code(&mut forced).await, 4014, "forced");
    assert!(discord.gateway_connections().iter().any(|c| c.events.iter().any(|e| e == "closed 4004")));
}

#[tokio::test]
async fn a_bot_whose_agent_does_not_answer_shows_unknown_not_a_guess() {
    use fakes::openclaw::{FakeOpenClaw, FakeOpenClawOptions};
    let agent = FakeOpenClaw::spawn(FakeOpenClawOptions { any_token: true, ..FakeOpenClawOptions::default() }).await;
    let telegram = FakeTelegram::spawn().await;
    let app = app_with(&telegram, &["--fake-agent-url", &agent.ws_url()]).await;
    let (cookie, user_id) = app.signed_up_cookie("silent-bot@example.com").await;
    let token = telegram.add_bot("quiet_bot");
    stored_bot(&app, &user_id, token.split(':').next().unwrap(), &token).await;
    let status = |listed: &Value| listed["channels"][0]["status"].clone();

    // Up: what the agent reports (this one has no channel configured).
    let mut ws = app.ws(&cookie, "").await;
    ws.ready().await;
    let listed = app.json_as(&cookie, "/api/integrations").await;
    assert_eq!(listed["agent"]["state"], "running", "{listed}");
    assert_eq!(status(&listed)["state"], "disconnected");
    assert!(status(&listed)["detail"].as_str().unwrap().contains("no bot configured"), "{listed}");

    // Running as far as Roost knows, but not answering: unknown, never "not connected".
    agent.shutdown();
    let listed = app.json_as(&cookie, "/api/integrations").await;
    assert_eq!(listed["agent"]["state"], "unreachable", "{listed}");
    assert_eq!(status(&listed)["state"], "unknown", "{listed}");
    assert!(status(&listed)["detail"].as_str().unwrap().contains("asks again"), "{listed}");
}
