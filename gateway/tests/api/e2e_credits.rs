//! Credits with the real OpenClaw agent: its model call is debited at the model's price, and
//! once the credits are gone the chat says so in Roost's words, not the agent's "request failed".

use std::time::Duration;

use crate::e2e_openclaw::{READY_WAIT, REPLY_PREFIX, agent_slots, available, start_with};
use crate::helpers::wait_until_within;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_real_agents_model_calls_are_debited_and_out_of_credits_shows_in_the_chat() {
    if !available() {
        return;
    }
    let _slot = agent_slots().acquire().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    // One credit a month: the first call goes (and costs far more), the next is refused.
    let plans = crate::helpers::plans_file(dir.path(), 1, "fake-model");
    let server = tokio::task::spawn_blocking(move || start_with(true, &["--plans", &plans])).await.unwrap();
    let app = &server.app;
    let (cookie, _) = app.signed_up_cookie("spender@example.com").await;
    let mut ws = app.ws(&cookie, "").await;
    ws.wait = READY_WAIT;
    ws.ready().await;
    ws.wait = Duration::from_secs(120);
    let reply = ws.chat("main", "spend my only credit").await;
    assert!(reply.starts_with(REPLY_PREFIX), "{reply}");

    // Charged exactly at the price for the tokens the provider reported.
    wait_until_within("the call is debited", Duration::from_secs(30), || async {
        let billing = app.json_as(&cookie, "/api/billing").await;
        billing["usage"]["recent"].as_array().is_some_and(|r| !r.is_empty())
    })
    .await;
    let row = app
        .sql("SELECT input_tokens || '|' || output_tokens || '|' || credits || '|' || from_grants FROM usage_events")
        .await;
    let libsql::Value::Text(row) = &row[0] else { panic!("{row:?}") };
    let n: Vec<i64> = row.split('|').map(|v| v.parse().unwrap()).collect();
    assert_eq!(n[2], n[0] + 2 * n[1], "credits = 1 per prompt token + 2 per reply token: {row}");
    assert_eq!(n[3], 1, "the one credit left was taken: {row}");
    assert_eq!(app.json_as(&cookie, "/api/billing").await["balance"], 0);

    // The next message: the model call is refused before it goes upstream, and the chat says why.
    let calls_before = server.llm.requests().len();
    let run = uuid::Uuid::new_v4().to_string();
    ws.request(
        "broke",
        "chat.send",
        serde_json::json!({ "sessionKey": "main", "message": "and another", "idempotencyKey": run }),
    )
    .await;
    let error = ws.until("error", |f| f["event"] == "chat" && f["payload"]["state"] == "error").await;
    let message = error["payload"]["errorMessage"].as_str().unwrap_or_default();
    assert!(message.starts_with("You're out of credits"), "{error}");
    assert_eq!(error["payload"]["errorKind"], "out_of_credits");
    assert_eq!(server.llm.requests().len(), calls_before, "nothing reached the provider");
    drop(ws);
    server.stop();
}
