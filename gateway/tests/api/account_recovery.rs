//! Account basics (issue 13, items 10 and 11): change the email with the password re-entered,
//! and the operator's one-time reset link (single use, 30 minutes, signs out every session).

use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::{PASSWORD, TestApp, error_code};

async fn login(app: &TestApp, email: &str, password: &str) -> u16 {
    let res =
        app.post(&reqwest::Client::new(), "/api/auth/login", &json!({ "email": email, "password": password })).await;
    res.status().as_u16()
}

#[tokio::test]
async fn an_email_change_needs_the_password_a_valid_address_and_a_free_one() {
    let app = TestApp::spawn().await;
    let (cookie, _) = app.signed_up_cookie("old@example.com").await;
    app.signed_up_cookie("taken@example.com").await;
    let change = |email: &str, password: &str| json!({ "new_email": email, "password": password });

    let res = app.send_as(&cookie, Method::POST, "/api/me/email", Some(&change("new@example.com", "wrong one!"))).await;
    assert_eq!(error_code(res).await, (403, "wrong_password".into()));
    let res =
        app.send_as(&cookie, Method::POST, "/api/me/email", Some(&json!({ "new_email": "new@example.com" }))).await;
    assert_eq!(error_code(res).await.0, 400, "the password is required");
    let res = app.send_as(&cookie, Method::POST, "/api/me/email", Some(&change("not an email", PASSWORD))).await;
    assert_eq!(error_code(res).await, (400, "invalid_email".into()));
    let res = app.send_as(&cookie, Method::POST, "/api/me/email", Some(&change("Taken@Example.com", PASSWORD))).await;
    let status = res.status();
    let body: Value = res.json().await.unwrap();
    assert_eq!((status.as_u16(), body["error"]["code"].as_str()), (409, Some("email_taken")));
    assert!(body["error"]["message"].as_str().unwrap().contains("Another account already uses this email"));
    assert_eq!(login(&app, "old@example.com", PASSWORD).await, 200, "nothing changed yet");

    let res = app.send_as(&cookie, Method::POST, "/api/me/email", Some(&change(" New@Example.com ", PASSWORD))).await;
    assert_eq!(res.status(), 200);
    assert_eq!(res.json::<Value>().await.unwrap()["email"], "new@example.com");
    assert_eq!(app.json_as(&cookie, "/api/me").await["email"], "new@example.com");
    assert_eq!(login(&app, "new@example.com", PASSWORD).await, 200);
    assert_eq!(login(&app, "old@example.com", PASSWORD).await, 401);
}

/// The link the operator hands over: `roost admin reset-password EMAIL`, in its own process.
async fn reset_link(app: &TestApp, email: &str) -> String {
    let printed = crate::revocations::admin(app, &["reset-password", email, "--public-origin", &app.origin]).await;
    printed.trim().to_string()
}

fn token_of(link: &str) -> &str {
    link.split_once("/reset#token=").expect("a reset link").1
}

async fn reset(app: &TestApp, token: &str, password: &str) -> reqwest::Response {
    app.post(&reqwest::Client::new(), "/api/auth/reset", &json!({ "token": token, "new_password": password })).await
}

#[tokio::test]
async fn a_reset_link_sets_a_new_password_once_and_signs_out_every_session() {
    let app = TestApp::spawn().await;
    let email = "forgetful@example.com";
    let (cookie, _) = app.signed_up_cookie(email).await;
    let link = reset_link(&app, email).await;
    assert!(link.starts_with(&format!("{}/reset#token=", app.origin)), "{link}");
    let token = token_of(&link);
    assert!(!crate::helpers::contains(&app.db_bytes(), token), "only the token's hash is stored");
    let audit = app.sql("SELECT actor || ' ' || action FROM admin_audit").await;
    assert_eq!(audit, [libsql::Value::Text("cli user.reset_link".into())], "the operator's link is audited");
    let unknown = crate::revocations::admin_output(&app, &["reset-password", "nobody@example.com"]).await;
    assert!(!unknown.status.success() && unknown.stdout.is_empty(), "no link for an account that is not there");
    assert!(String::from_utf8_lossy(&unknown.stderr).contains("no account for nobody@example.com"));

    assert_eq!(error_code(reset(&app, token, "short").await).await, (400, "weak_password".into()));
    assert_eq!(reset(&app, token, "my new long password").await.status(), 200);
    assert_eq!(app.send_as(&cookie, Method::GET, "/api/me", None).await.status(), 401, "signed out");
    assert_eq!(login(&app, email, PASSWORD).await, 401);
    assert_eq!(login(&app, email, "my new long password").await, 200);

    let again = reset(&app, token, "yet another password").await;
    assert_eq!(error_code(again).await, (400, "reset_link_invalid".into()), "a link works once");
    assert_eq!(login(&app, email, "my new long password").await, 200);
    assert_eq!(error_code(reset(&app, "made-up", "yet another password").await).await.1, "reset_link_invalid");
}

#[tokio::test]
async fn a_reset_link_expires_after_30_minutes() {
    let app = TestApp::spawn().await;
    let email = "slow@example.com";
    app.signed_up_cookie(email).await;
    let link = reset_link(&app, email).await;
    let lifetime = app.sql("SELECT expires_at - created_at FROM password_resets").await;
    assert_eq!(lifetime[0], libsql::Value::Integer(30 * 60));
    app.sql("UPDATE password_resets SET expires_at = unixepoch() - 1").await;
    assert_eq!(error_code(reset(&app, token_of(&link), "a new password here").await).await.1, "reset_link_invalid");
    assert_eq!(login(&app, email, PASSWORD).await, 200, "the password did not change");
}
