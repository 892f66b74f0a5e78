//! Credits: only priced models go upstream, each call is debited at its model's price exactly
//! once, and a user out of credits or over their own budget is refused before anything is sent.

use std::time::Duration;

use serde_json::{Value, json};

use super::{PROMPT_TOKENS, Proxy, REPLY_TOKENS, chat, exactly_usage_rows};
use crate::helpers::{TestApp, error_code, wait_until};

/// `gpt-test` in the fixture: 1 credit per prompt token, 2 per reply token.
const CALL_COST: i64 = PROMPT_TOKENS + 2 * REPLY_TOKENS;

async fn billing(app: &TestApp, cookie: &str) -> Value {
    app.json_as(cookie, "/api/billing").await
}

/// The proxy's user, with a session cookie for the API.
async fn cookie_of(proxy: &Proxy) -> String {
    let res = reqwest::Client::new()
        .post(proxy.app.url("/api/auth/login"))
        .header("Origin", &proxy.app.origin)
        .json(&json!({ "email": "agent@example.com", "password": crate::helpers::PASSWORD }))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    res.headers()["set-cookie"].to_str().unwrap().split(';').next().unwrap().to_string()
}

#[tokio::test]
async fn only_priced_models_are_forwarded_and_the_refusal_names_those_on_offer() {
    let proxy = Proxy::start().await;
    let mut body = chat(false);
    body["model"] = json!("gpt-4-32k-very-expensive");
    body["max_tokens"] = json!(100_000);
    let res = proxy.openai(&body).send().await.unwrap();
    assert_eq!(res.status(), 400);
    let error: Value = res.json().await.unwrap();
    assert_eq!(error["error"]["code"], "model_not_offered");
    let message = error["error"]["message"].as_str().unwrap();
    assert!(message.contains("\"gpt-4-32k-very-expensive\" is not offered"), "{message}");
    assert!(message.ends_with("Models on offer: claude-test, gpt-4o-mini, gpt-test."), "{message}");
    assert!(proxy.generation_requests().is_empty(), "nothing went upstream");
}

#[tokio::test]
async fn each_call_is_debited_at_its_models_price_once_and_the_books_balance() {
    let proxy = Proxy::start().await;
    let cookie = cookie_of(&proxy).await;
    let before = billing(&proxy.app, &cookie).await;
    assert_eq!(before["balance"], 1_000_000, "the free plan's month: {before}");
    assert_eq!(before["grants"][0]["source"], "free_allowance");
    for stream in [false, true] {
        let res = proxy.openai(&chat(stream)).send().await.unwrap();
        assert_eq!(res.status(), 200);
        let _ = res.bytes().await;
    }
    exactly_usage_rows(&proxy.app, 2).await;
    let after = billing(&proxy.app, &cookie).await;
    assert_eq!(after["balance"], 1_000_000 - 2 * CALL_COST, "{after}");
    assert_eq!(after["spent_this_month"], 2 * CALL_COST);
    assert_eq!(after["usage"]["recent"][0]["credits"], CALL_COST);
    assert_eq!(after["usage"]["by_day"][0]["calls"], 2);
    let reconcile = tokio::process::Command::new(env!("CARGO_BIN_EXE_roost"))
        .args(["admin", "--data-dir", proxy.app.dir.path().to_str().unwrap(), "reconcile-credits"])
        .output()
        .await
        .unwrap();
    assert!(reconcile.status.success(), "{}", String::from_utf8_lossy(&reconcile.stdout));
}

#[tokio::test]
async fn out_of_credits_refuses_before_anything_is_sent() {
    let dir = tempfile::tempdir().unwrap();
    let plans = dir.path().join("plans.toml");
    std::fs::write(
        &plans,
        "[free]\nname = \"Free\"\nmonthly_credits = 10\n\
         [models.gpt-test]\ninput_per_million = 1_000_000\noutput_per_million = 2_000_000\n",
    )
    .unwrap();
    let proxy = Proxy::start_with(Duration::ZERO, &["--plans", plans.to_str().unwrap()]).await;
    let cookie = cookie_of(&proxy).await;
    // 10 credits left: this call goes, and costs more than them.
    let res = proxy.openai(&chat(false)).send().await.unwrap();
    assert_eq!(res.status(), 200);
    let _ = res.bytes().await;
    wait_until("the call is debited", || async { billing(&proxy.app, &cookie).await["balance"] == 0 }).await;
    let res = proxy.openai(&chat(false)).send().await.unwrap();
    let (status, code) = error_code(res).await;
    assert_eq!((status, code.as_str()), (400, "out_of_credits"), "never a 401 or 402");
    assert_eq!(proxy.generation_requests().len(), 1, "the refused call never went upstream");
    let after = billing(&proxy.app, &cookie).await;
    assert_eq!(after["spent_this_month"], CALL_COST, "charged for what it used: {after}");
}

#[tokio::test]
async fn a_users_own_budget_caps_their_month_and_bad_budgets_are_refused() {
    let proxy = Proxy::start().await;
    let cookie = cookie_of(&proxy).await;
    let set = |budget: Value| {
        let app = &proxy.app;
        let cookie = cookie.clone();
        async move { app.send_as(&cookie, reqwest::Method::PUT, "/api/billing/budget", Some(&budget)).await }
    };
    assert_eq!(set(json!({ "monthly_credits": CALL_COST })).await.status(), 204);
    let res = proxy.openai(&chat(false)).send().await.unwrap();
    assert_eq!(res.status(), 200);
    let _ = res.bytes().await;
    exactly_usage_rows(&proxy.app, 1).await;
    let res = proxy.openai(&chat(false)).send().await.unwrap();
    assert_eq!(error_code(res).await, (400, "budget_reached".into()));
    assert_eq!(set(json!({ "monthly_credits": null })).await.status(), 204);
    let res = proxy.openai(&chat(false)).send().await.unwrap();
    assert_eq!(res.status(), 200, "no budget, no cap");
    for bad in [
        json!({ "monthly_credits": -1 }),
        json!({ "monthly_credits": "lots" }),
        json!({ "cap": 5 }),
        json!({ "monthly_credits": 10_000_000_000u64 }),
    ] {
        let (status, _) = error_code(set(bad.clone()).await).await;
        assert_eq!(status, 400, "{bad}");
    }
    // Another user sees only their own credits.
    let (other, _) = proxy.app.signed_up_cookie("other@example.com").await;
    let theirs = billing(&proxy.app, &other).await;
    assert_eq!(
        (theirs["spent_this_month"].as_i64(), theirs["usage"]["recent"].as_array().map(Vec::len)),
        (Some(0), Some(0))
    );
}
