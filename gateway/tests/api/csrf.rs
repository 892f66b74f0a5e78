//! The CSRF exemption belongs to requests that really authenticate with a Bearer token.

use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::{TestApp, error_code};

/// The probe: `Authorization: Basic eA==` plus a cookie skipped the Origin check.
#[tokio::test]
async fn another_authorization_scheme_does_not_skip_the_origin_check() {
    let app = TestApp::spawn().await;
    let (cookie, _) = app.signed_up_cookie("basic@example.com").await;
    let client = reqwest::Client::new();
    let res = client
        .post(app.url("/api/tokens"))
        .header("cookie", &cookie)
        .header("authorization", "Basic eA==")
        .json(&json!({ "name": "forged" }))
        .send()
        .await
        .unwrap();
    assert_eq!(error_code(res).await, (403, "cross_origin".into()));
    let res = client.post(app.url("/api/auth/logout")).header("cookie", &cookie).header("authorization", "Basic eA==");
    assert_eq!(error_code(res.send().await.unwrap()).await, (403, "cross_origin".into()));
    assert_eq!(app.count("api_tokens").await, 0);
    assert_eq!(app.json_as(&cookie, "/api/me").await["email"], "basic@example.com", "still signed in");
}

#[tokio::test]
async fn a_bearer_request_acts_only_as_its_token_and_never_with_the_cookies_it_carries() {
    let app = TestApp::spawn().await;
    let (alice_cookie, _) = app.signed_up_cookie("alice@example.com").await;
    let (bob_cookie, _) = app.signed_up_cookie("bob@example.com").await;
    let created = app.send_as(&bob_cookie, Method::POST, "/api/tokens", Some(&json!({ "name": "bob" }))).await;
    let bob_token = created.json::<Value>().await.unwrap()["token"].as_str().unwrap().to_string();
    let client = reqwest::Client::new();
    for bearer in [bob_token.as_str(), "rst_not-a-real-token", "garbage"] {
        let res = client
            .post(app.url("/api/auth/logout"))
            .header("cookie", &alice_cookie)
            .bearer_auth(bearer)
            .send()
            .await
            .unwrap();
        let status = res.status().as_u16();
        assert!(status == 204 || status == 401, "{bearer}: {status}");
        if bearer != bob_token {
            assert_eq!(status, 401, "a Bearer header that authenticates nothing is not exempt");
        }
    }
    assert_eq!(app.json_as(&alice_cookie, "/api/me").await["email"], "alice@example.com", "her cookie was ignored");
}
