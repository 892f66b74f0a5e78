//! Security headers on every response, HSTS on https origins, no caching of secrets.

use serde_json::json;

use crate::helpers::TestApp;

const EVERYWHERE: [&str; 4] =
    ["content-security-policy", "x-content-type-options", "referrer-policy", "x-frame-options"];

#[tokio::test]
async fn every_response_carries_the_security_headers() {
    let app = TestApp::spawn().await;
    let client = reqwest::Client::new();
    let responses = [
        client.get(app.url("/healthz")).send().await.unwrap(),
        client.get(app.url("/api/me")).send().await.unwrap(),
        client.get(app.url("/api/nope")).send().await.unwrap(),
        client.get(app.url("/login")).send().await.unwrap(),
        client.get(app.url("/favicon.svg")).send().await.unwrap(),
        client.post(app.url("/api/auth/logout")).send().await.unwrap(),
    ];
    for res in responses {
        for name in EVERYWHERE {
            assert!(res.headers().contains_key(name), "{} {} lacks {name}", res.url().path(), res.status());
        }
        assert!(!res.headers().contains_key("strict-transport-security"), "no HSTS on a plain-http origin");
    }
}

#[tokio::test]
async fn an_https_origin_turns_on_hsts() {
    let app = TestApp::spawn_with(&["--public-origin", "https://roost.example.com"]).await;
    let res = reqwest::get(app.url("/healthz")).await.unwrap();
    let hsts = res.headers().get("strict-transport-security").expect("HSTS").to_str().unwrap();
    assert!(hsts.starts_with("max-age=") && hsts["max-age=".len()..].parse::<u64>().unwrap() >= 31_536_000, "{hsts}");
}

#[tokio::test]
async fn responses_that_carry_a_secret_are_not_cached() {
    let app = TestApp::spawn().await;
    let client = app.browser();
    let signup = app.signup(&client, "nostore@example.com").await;
    assert_eq!(signup.status(), 201);
    assert_eq!(signup.headers().get("cache-control").unwrap(), "no-store", "sign-up sets a session cookie");
    let login = app
        .post(
            &app.browser(),
            "/api/auth/login",
            &json!({ "email": "nostore@example.com", "password": crate::helpers::PASSWORD }),
        )
        .await;
    assert_eq!(login.status(), 200);
    assert_eq!(login.headers().get("cache-control").unwrap(), "no-store", "so does login");
    let res = app.post(&client, "/api/tokens", &json!({ "name": "laptop" })).await;
    assert_eq!(res.status(), 201);
    assert_eq!(res.headers().get("cache-control").unwrap(), "no-store");
}
