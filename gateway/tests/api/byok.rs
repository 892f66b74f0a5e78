//! Bring your own key: `/api/me/llm-key` checks a user's own provider key against the fake
//! provider and seals it; the LLM proxy then sends that user's calls with it (and their model),
//! never with the operator's key, while everyone else's calls keep the operator's.

use std::time::{Duration, Instant};

use fakes::llm::{FakeLlm, FakeLlmOptions, RecordedRequest};
use gateway::agent_credentials::llm_credential;
use gateway::domain::UserId;
use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::{TestApp, contains, error_code, plans_file};

const OPERATOR_KEY: &str = "sk-operator-byok-0000";
const USER_KEY: &str = "sk-ant-user-own-key-7xQ9";
const OTHER_KEY: &str = "sk-proj-user-openai-key-k3Zw";
const OPERATOR_MODEL: &str = "gpt-test";
const OWN_MODEL: &str = "claude-own-1";
const CHAT: &str = "/llm/openai/v1/chat/completions";
const MESSAGES: &str = "/llm/anthropic/v1/messages";
const KEY_PATH: &str = "/api/me/llm-key";

struct Byok {
    app: TestApp,
    fake: FakeLlm,
    _plans: tempfile::TempDir,
}

/// A user signed in, and the credential their agent calls the proxy with.
struct User {
    cookie: String,
    id: String,
    credential: String,
}

impl Byok {
    /// Both providers behind the one fake; `free_credits` a month; `extra` flags.
    async fn start(free_credits: u64, extra: &[&str]) -> Self {
        let fake = FakeLlm::spawn(FakeLlmOptions {
            api_key: OPERATOR_KEY.into(),
            reply: Some("one two three".into()),
            chunk_delay: Duration::from_millis(1),
            model: OPERATOR_MODEL.into(),
        })
        .await;
        fake.offer_models(&[OWN_MODEL]);
        let dir = tempfile::tempdir().unwrap();
        let plans = plans_file(dir.path(), free_credits, OPERATOR_MODEL);
        let openai_base = format!("{}/v1", fake.base_url());
        let mut flags = vec![
            "--plans",
            &plans,
            "--llm-model",
            OPERATOR_MODEL,
            "--llm-openai-base-url",
            &openai_base,
            "--llm-openai-api-key",
            OPERATOR_KEY,
        ];
        let anthropic_base = fake.base_url();
        flags.extend_from_slice(&[
            "--llm-anthropic-base-url",
            &anthropic_base,
            "--llm-anthropic-api-key",
            OPERATOR_KEY,
        ]);
        flags.extend_from_slice(extra);
        let app = TestApp::spawn_with(&flags).await;
        Self { app, fake, _plans: dir }
    }

    async fn user(&self, email: &str) -> User {
        let (cookie, id) = self.app.signed_up_cookie(email).await;
        let credential = llm_credential(&self.app.state.secret, &UserId::parse(&id).unwrap());
        User { cookie, id, credential }
    }

    async fn save(&self, user: &User, body: Value) -> reqwest::Response {
        self.app.send_as(&user.cookie, Method::PUT, KEY_PATH, Some(&body)).await
    }

    /// A user's agent's model call on the OpenAI route, answered in full.
    async fn chat(&self, user: &User) -> (u16, String) {
        let body = json!({ "model": OPERATOR_MODEL, "messages": [{ "role": "user", "content": "hi there" }] });
        let res =
            reqwest::Client::new().post(self.app.url(CHAT)).bearer_auth(&user.credential).json(&body).send().await;
        let res = res.unwrap();
        (res.status().as_u16(), res.text().await.unwrap())
    }

    fn last_call(&self) -> RecordedRequest {
        self.fake.requests().into_iter().rev().find(|r| r.method == "POST").expect("a model call went upstream")
    }

    async fn usage_count(&self, user: &User) -> i64 {
        let sql = format!("SELECT count(*) FROM usage_events WHERE user_id = '{}' AND complete = 1", user.id);
        match self.app.sql(&sql).await[0] {
            libsql::Value::Integer(n) => n,
            ref other => panic!("{other:?}"),
        }
    }

    async fn wait_for_usage(&self, user: &User, n: i64) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while self.usage_count(user).await < n {
            assert!(Instant::now() < deadline, "waited for {n} usage rows");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    async fn balance(&self, user: &User) -> i64 {
        self.app.json_as(&user.cookie, "/api/billing").await["balance"].as_i64().unwrap()
    }
}

fn anthropic_key(model: Option<&str>) -> Value {
    json!({ "provider": "anthropic", "key": USER_KEY, "model": model })
}

#[tokio::test]
async fn a_good_key_is_checked_once_sealed_and_shown_only_by_its_last_four() {
    let byok = Byok::start(1_000, &[]).await;
    byok.fake.accept_key(USER_KEY);
    let user = byok.user("own@example.com").await;

    let res = byok.save(&user, anthropic_key(Some(OWN_MODEL))).await;
    assert_eq!(res.status(), 200);
    let text = res.text().await.unwrap();
    assert!(!text.contains(USER_KEY), "the key is never answered back");
    let saved: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(saved["key"]["provider"], "anthropic");
    assert_eq!(saved["key"]["model"], OWN_MODEL);
    assert_eq!(saved["key"]["last4"], "7xQ9");
    assert_eq!(saved["key"]["status"], "working");
    assert!(saved["key"]["added_at"].as_i64().unwrap() > 0);
    assert_eq!(saved["debited"], false);

    // The check was one model-list call to Anthropic, with the user's key.
    let checks: Vec<_> = byok.fake.requests().into_iter().filter(|r| r.path == "/v1/models").collect();
    assert_eq!(checks.len(), 1);
    assert_eq!(checks[0].header("x-api-key"), Some(USER_KEY));
    assert_eq!(checks[0].header("anthropic-version"), Some("2023-06-01"));

    let shown = byok.app.json_as(&user.cookie, KEY_PATH).await;
    assert_eq!(shown, saved);
    assert!(!shown.to_string().contains(USER_KEY));

    // At rest: sealed with key version 1, nowhere in the database files in the clear.
    let sealed = byok.app.sql("SELECT key_sealed FROM user_llm_keys").await;
    let libsql::Value::Blob(sealed) = &sealed[0] else { panic!("a sealed blob") };
    assert!(!contains(sealed, USER_KEY) && sealed.len() > USER_KEY.len());
    assert_eq!(byok.app.sql("SELECT key_version FROM user_llm_keys").await[0], libsql::Value::Integer(1));
    assert!(!contains(&byok.app.db_bytes(), USER_KEY), "the key is not in the database in the clear");

    // Without a model, the operator's is taken when the key offers it.
    byok.fake.accept_key(OTHER_KEY);
    let res = byok.save(&user, json!({ "provider": "openai", "key": OTHER_KEY })).await;
    assert_eq!(res.status(), 200);
    let replaced: Value = res.json().await.unwrap();
    assert_eq!(
        (replaced["key"]["provider"].as_str(), replaced["key"]["model"].as_str()),
        (Some("openai"), Some(OPERATOR_MODEL))
    );
    assert_eq!(byok.app.count("user_llm_keys").await, 1, "one key per user, replaced");
}

#[tokio::test]
async fn a_bad_key_is_refused_with_a_sentence_and_never_echoed() {
    let byok = Byok::start(1_000, &[]).await;
    let user = byok.user("bad@example.com").await;

    for provider in ["anthropic", "openai"] {
        let res = byok.save(&user, json!({ "provider": provider, "key": USER_KEY })).await;
        assert_eq!(res.status(), 422);
        let text = res.text().await.unwrap();
        assert!(!text.contains(USER_KEY), "the refusal never echoes the key: {text}");
        let body: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(body["error"]["code"], "llm_key_refused", "{provider}: {text}");
        crate::helpers::assert_sentence(body["error"]["message"].as_str().unwrap());
    }
    let last = byok.fake.requests().pop().unwrap();
    assert_eq!(last.api_key(), Some(USER_KEY), "the fake saw the key and refused it with its 401");

    for (body, code) in [
        (json!({ "provider": "anthropic", "key": "" }), "invalid_llm_key"),
        (json!({ "provider": "anthropic", "key": "has spaces in it ok" }), "invalid_llm_key"),
        (json!({ "provider": "anthropic", "key": "k".repeat(5_000) }), "invalid_llm_key"),
        (json!({ "provider": "gemini", "key": USER_KEY }), "invalid_provider"),
    ] {
        assert_eq!(error_code(byok.save(&user, body).await).await.1, code);
    }
    byok.fake.accept_key(USER_KEY);
    let (status, code) = error_code(byok.save(&user, anthropic_key(Some("not-a-model"))).await).await;
    assert_eq!((status, code.as_str()), (422, "invalid_model"));
    assert_eq!(byok.app.count("user_llm_keys").await, 0, "nothing was saved");
}

#[tokio::test]
async fn a_provider_that_does_not_answer_the_check_times_out() {
    let byok = Byok::start(1_000, &["--byok-check-timeout-secs", "1"]).await;
    byok.fake.accept_key(USER_KEY);
    byok.fake.hang_model_lists(true);
    let user = byok.user("slow@example.com").await;
    let started = Instant::now();
    let (status, code) = error_code(byok.save(&user, anthropic_key(Some(OWN_MODEL))).await).await;
    assert_eq!((status, code.as_str()), (504, "llm_key_check_timeout"));
    assert!(started.elapsed() < Duration::from_secs(5), "the check gave up after its timeout");
    assert_eq!(byok.app.count("user_llm_keys").await, 0);
}

#[tokio::test]
async fn an_api_token_can_read_the_key_but_not_save_or_remove_it() {
    let byok = Byok::start(1_000, &[]).await;
    byok.fake.accept_key(USER_KEY);
    let (client, _) = byok.app.signed_up_user("token@example.com").await;
    let token = byok.app.create_token(&client, "t").await["token"].as_str().unwrap().to_string();
    let http = reqwest::Client::new();
    let put = http.put(byok.app.url(KEY_PATH)).bearer_auth(&token).json(&anthropic_key(Some(OWN_MODEL)));
    assert_eq!(error_code(put.send().await.unwrap()).await, (403, "session_required".into()));
    let delete = http.delete(byok.app.url(KEY_PATH)).bearer_auth(&token).send().await.unwrap();
    assert_eq!(delete.status(), 403);
    assert_eq!(byok.app.json_bearer(&token, KEY_PATH).await, json!({ "key": null, "debited": false }));
}

#[tokio::test]
async fn a_users_calls_go_with_their_key_and_model_and_another_users_with_the_operators() {
    let byok = Byok::start(1_000, &[]).await;
    byok.fake.accept_key(USER_KEY);
    let own = byok.user("own@example.com").await;
    let other = byok.user("other@example.com").await;
    assert_eq!(byok.save(&own, anthropic_key(Some(OWN_MODEL))).await.status(), 200);

    // OpenAI route, Anthropic key: Anthropic's OpenAI-compatible endpoint, Bearer key.
    assert_eq!(byok.chat(&own).await.0, 200);
    let call = byok.last_call();
    assert_eq!((call.path.as_str(), call.api_key()), ("/v1/chat/completions", Some(USER_KEY)));
    assert_eq!(call.body["model"], OWN_MODEL);
    assert!(call.header("x-api-key").is_none());

    // Anthropic route, Anthropic key: x-api-key is the user's.
    let body = json!({ "model": "x", "max_tokens": 10, "messages": [{ "role": "user", "content": "hi" }] });
    let res = reqwest::Client::new()
        .post(byok.app.url(MESSAGES))
        .header("x-api-key", &own.credential)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let call = byok.last_call();
    assert_eq!((call.path.as_str(), call.header("x-api-key")), ("/v1/messages", Some(USER_KEY)));
    assert_eq!(call.body["model"], OWN_MODEL);

    // Another user: the operator's key and model, as before.
    assert_eq!(byok.chat(&other).await.0, 200);
    let call = byok.last_call();
    assert_eq!(call.api_key(), Some(OPERATOR_KEY));
    assert_eq!(call.body["model"], OPERATOR_MODEL);

    let own_calls = byok.fake.requests().into_iter().filter(|r| r.api_key() == Some(USER_KEY)).count();
    assert_eq!(own_calls, 3, "the check and two model calls, nothing else, with the user's key");
    let operator_calls: Vec<_> =
        byok.fake.requests().into_iter().filter(|r| r.api_key() == Some(OPERATOR_KEY)).collect();
    assert_eq!(operator_calls.len(), 1, "only the other user's call used the operator's key");
}

#[tokio::test]
async fn own_key_calls_are_recorded_but_not_debited_by_default_even_with_no_credits() {
    let byok = Byok::start(0, &[]).await;
    byok.fake.accept_key(USER_KEY);
    let user = byok.user("broke@example.com").await;
    let (status, body) = byok.chat(&user).await;
    assert_eq!(status, 400, "without a key and credits the call is refused: {body}");
    assert!(body.contains("out_of_credits"));

    assert_eq!(byok.save(&user, anthropic_key(Some(OWN_MODEL))).await.status(), 200);
    assert_eq!(byok.chat(&user).await.0, 200, "their own key answers though they have no credits");
    byok.wait_for_usage(&user, 1).await;
    let row = byok.app.sql(&format!("SELECT model FROM usage_events WHERE user_id = '{}'", user.id)).await;
    assert_eq!(row, [libsql::Value::Text(OWN_MODEL.into())], "the usage page shows the call");
    assert_eq!(byok.balance(&user).await, 0, "nothing was debited");
}

#[tokio::test]
async fn with_byok_debit_own_key_calls_cost_credits() {
    let byok = Byok::start(1_000, &["--byok-debit"]).await;
    byok.fake.accept_key(USER_KEY);
    let user = byok.user("debit@example.com").await;
    let (status, code) = error_code(byok.save(&user, anthropic_key(Some(OWN_MODEL))).await).await;
    assert_eq!((status, code.as_str()), (422, "model_not_offered"), "a debited key needs a priced model");
    let res = byok.save(&user, anthropic_key(Some(OPERATOR_MODEL))).await;
    assert_eq!(res.status(), 200);
    assert_eq!(res.json::<Value>().await.unwrap()["debited"], true);
    let before = byok.balance(&user).await;
    assert_eq!(byok.chat(&user).await.0, 200);
    assert_eq!(byok.last_call().api_key(), Some(USER_KEY));
    byok.wait_for_usage(&user, 1).await;
    // 2 prompt words at 1 credit, 3 reply words at 2.
    crate::helpers::wait_until("the call is debited", || async { byok.balance(&user).await == before - 8 }).await;
}

#[tokio::test]
async fn a_key_the_provider_stops_accepting_gives_a_clear_error_and_shows_failing() {
    let byok = Byok::start(1_000, &[]).await;
    byok.fake.accept_key(USER_KEY);
    let user = byok.user("revoked@example.com").await;
    assert_eq!(byok.save(&user, anthropic_key(Some(OWN_MODEL))).await.status(), 200);
    byok.fake.revoke_key(USER_KEY);

    let (status, body) = byok.chat(&user).await;
    assert_eq!(status, 400, "not the provider's 401, which would lock the agent's credential: {body}");
    let error: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(error["error"]["code"], "llm_key_refused");
    crate::helpers::assert_sentence(error["error"]["message"].as_str().unwrap());
    assert!(!body.contains(USER_KEY));
    let shown = byok.app.json_as(&user.cookie, KEY_PATH).await;
    assert_eq!(shown["key"]["status"], "failing");
    assert!(shown["key"]["failing_since"].as_i64().is_some());
    assert_eq!(byok.last_call().api_key(), Some(USER_KEY), "never retried with the operator's key");

    byok.fake.accept_key(USER_KEY);
    assert_eq!(byok.chat(&user).await.0, 200);
    assert_eq!(byok.app.json_as(&user.cookie, KEY_PATH).await["key"]["status"], "working");
}

#[tokio::test]
async fn removing_the_key_returns_the_user_to_the_operators_model_at_once() {
    let byok = Byok::start(1_000, &[]).await;
    byok.fake.accept_key(USER_KEY);
    let user = byok.user("remove@example.com").await;
    assert_eq!(byok.save(&user, anthropic_key(Some(OWN_MODEL))).await.status(), 200);
    assert_eq!(byok.chat(&user).await.0, 200);
    assert_eq!(byok.last_call().api_key(), Some(USER_KEY));

    let res = byok.app.send_as(&user.cookie, Method::DELETE, KEY_PATH, None).await;
    assert_eq!(res.status(), 204);
    assert_eq!(byok.app.json_as(&user.cookie, KEY_PATH).await["key"], Value::Null);
    assert_eq!(byok.chat(&user).await.0, 200);
    let call = byok.last_call();
    assert_eq!((call.api_key(), call.body["model"].as_str()), (Some(OPERATOR_KEY), Some(OPERATOR_MODEL)));
    assert_eq!(byok.app.count("user_llm_keys").await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_settings_page_adds_refuses_replaces_shows_failing_and_removes_the_key() {
    const SECOND_KEY: &str = "sk-ant-second-key-Pq4T";
    let byok = Byok::start(1_000, &[]).await;
    byok.fake.accept_key(USER_KEY);
    byok.fake.accept_key(SECOND_KEY);
    byok.user("page@example.com").await;
    // A second user whose key the provider stopped accepting after it was saved.
    let failing = byok.user("failing@example.com").await;
    byok.fake.accept_key(OTHER_KEY);
    let res = byok.save(&failing, json!({ "provider": "anthropic", "key": OTHER_KEY, "model": OWN_MODEL })).await;
    assert_eq!(res.status(), 200);
    byok.fake.revoke_key(OTHER_KEY);
    assert_eq!(byok.chat(&failing).await.0, 400);

    let Byok { app, fake, _plans } = byok;
    tokio::task::spawn_blocking(move || {
        let env = [
            ("EMAIL", "page@example.com"),
            ("PASSWORD", crate::helpers::PASSWORD),
            ("GOOD_KEY", USER_KEY),
            ("GOOD_KEY2", SECOND_KEY),
            ("BAD_KEY", "sk-ant-not-accepted-0000"),
            ("MODEL", OWN_MODEL),
            ("FAILING_EMAIL", "failing@example.com"),
        ];
        crate::browser::run_spec(&app, "byok.spec.mjs", &env);
        drop((app, fake));
    })
    .await
    .unwrap();
}

#[tokio::test]
async fn deleting_the_account_deletes_its_key() {
    let byok = Byok::start(1_000, &[]).await;
    byok.fake.accept_key(USER_KEY);
    let user = byok.user("gone@example.com").await;
    assert_eq!(byok.save(&user, anthropic_key(Some(OWN_MODEL))).await.status(), 200);
    let body = json!({ "password": crate::helpers::PASSWORD });
    assert_eq!(byok.app.send_as(&user.cookie, Method::DELETE, "/api/me", Some(&body)).await.status(), 204);
    assert_eq!(byok.app.count("user_llm_keys").await, 0);
}
