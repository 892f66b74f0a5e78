//! Who may sign up (issue 15, item 6): `--signups open|invite|closed`, invite codes that are
//! single-use or counted and expire, and Clerk's first sight of a user under the same policy.

use gateway::db::admin_audit::Actor;
use serde_json::{Value, json};

use crate::clerk::{claims, clerk_app, sign};
use crate::helpers::{PASSWORD, TestApp, error_code};

async fn invite(app: &TestApp, uses: u32, lifetime: &str) -> String {
    match gateway::operator::create_invite(&app.state.db, &Actor::Cli, uses, lifetime).await {
        Ok(made) => made.code,
        Err(_) => panic!("the invite is made"),
    }
}

async fn signup_with(app: &TestApp, email: &str, code: Option<&str>) -> reqwest::Response {
    let mut body = json!({ "email": email, "password": PASSWORD });
    if let Some(code) = code {
        body["invite_code"] = json!(code);
    }
    app.post(&reqwest::Client::new(), "/api/auth/signup", &body).await
}

async fn policy(app: &TestApp) -> Value {
    reqwest::get(app.url("/api/auth/policy")).await.unwrap().json().await.unwrap()
}

#[tokio::test]
async fn closed_signups_refuse_with_a_sentence_and_create_nobody() {
    let app = TestApp::spawn_with(&["--signups", "closed"]).await;
    assert_eq!(policy(&app).await["signups"], "closed");
    let res = signup_with(&app, "nobody@example.com", None).await;
    assert_eq!(res.status(), 403);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["error"]["code"], "signups_closed");
    assert!(body["error"]["message"].as_str().unwrap().ends_with('.'), "{body}");
    let code = invite(&app, 1, "7d").await;
    assert_eq!(error_code(signup_with(&app, "nobody@example.com", Some(&code)).await).await.1, "signups_closed");
    assert_eq!(app.count("users").await, 0);
}

#[tokio::test]
async fn open_is_the_loopback_default() {
    let app = TestApp::spawn().await;
    assert_eq!(policy(&app).await["signups"], "open");
    assert_eq!(signup_with(&app, "anyone@example.com", None).await.status(), 201);
}

#[tokio::test]
async fn an_invite_lets_in_as_many_accounts_as_it_counts_and_no_more() {
    let app = TestApp::spawn_with(&["--signups", "invite"]).await;
    assert_eq!(policy(&app).await["signups"], "invite");
    assert_eq!(error_code(signup_with(&app, "a@example.com", None).await).await, (403, "invite_required".into()));
    let wrong = "inv_not-a-real-code-at-all";
    assert_eq!(error_code(signup_with(&app, "a@example.com", Some(wrong)).await).await, (403, "invite_invalid".into()));

    let once = invite(&app, 1, "7d").await;
    assert_eq!(signup_with(&app, "a@example.com", Some(&once)).await.status(), 201);
    let again = signup_with(&app, "b@example.com", Some(&once)).await;
    assert_eq!(error_code(again).await, (403, "invite_invalid".into()), "a single-use code works once");

    let counted = invite(&app, 2, "1h").await;
    // A refused sign-up (the email is taken) uses nothing of the code.
    assert_eq!(error_code(signup_with(&app, "a@example.com", Some(&counted)).await).await.1, "email_taken");
    assert_eq!(signup_with(&app, "b@example.com", Some(&counted)).await.status(), 201);
    assert_eq!(signup_with(&app, "c@example.com", Some(&format!(" {counted} "))).await.status(), 201);
    assert_eq!(error_code(signup_with(&app, "d@example.com", Some(&counted)).await).await.1, "invite_invalid");
    assert_eq!(app.count("users").await, 3);
    let stored = app.sql("SELECT group_concat(code_hash || id) FROM invite_codes").await;
    let libsql::Value::Text(stored) = &stored[0] else { panic!("invites are stored") };
    assert!(!stored.contains(&once[4..]) && !stored.contains(&counted[4..]), "only hashes are stored");
}

#[tokio::test]
async fn an_expired_or_revoked_invite_is_refused() {
    let app = TestApp::spawn_with(&["--signups", "invite"]).await;
    let code = invite(&app, 5, "7d").await;
    app.sql("UPDATE invite_codes SET expires_at = unixepoch() - 1").await;
    assert_eq!(error_code(signup_with(&app, "late@example.com", Some(&code)).await).await.1, "invite_invalid");

    let code = invite(&app, 5, "7d").await;
    let id = &code[..10];
    assert!(matches!(gateway::operator::revoke_invite(&app.state.db, &Actor::Cli, id).await, Ok(true)));
    assert_eq!(error_code(signup_with(&app, "late@example.com", Some(&code)).await).await.1, "invite_invalid");
    assert_eq!(app.count("users").await, 0);
}

async fn clerk_me(app: &TestApp, sub: &str, invite: Option<&str>) -> reqwest::Response {
    let token = sign(&claims(app, sub, "sess_1"));
    let mut request = reqwest::Client::new().get(app.url("/api/me")).bearer_auth(token);
    if let Some(code) = invite {
        request = request.header("roost-invite", code);
    }
    request.send().await.unwrap()
}

#[tokio::test]
async fn clerk_first_sight_follows_a_closed_policy() {
    let app = clerk_app(&["--signups", "closed"]).await;
    assert_eq!(error_code(clerk_me(&app, "user_new", None).await).await, (403, "signups_closed".into()));
    assert_eq!(app.count("users").await, 0);
}

#[tokio::test]
async fn clerk_first_sight_needs_an_invite_once_and_not_after() {
    let app = clerk_app(&["--signups", "invite"]).await;
    assert_eq!(error_code(clerk_me(&app, "user_new", None).await).await, (403, "invite_required".into()));
    assert_eq!(error_code(clerk_me(&app, "user_new", Some("inv_wrong")).await).await.1, "invite_invalid");
    let code = invite(&app, 1, "7d").await;
    assert_eq!(clerk_me(&app, "user_new", Some(&code)).await.status(), 200);
    assert_eq!(clerk_me(&app, "user_new", None).await.status(), 200, "a known user needs no code");
    assert_eq!(error_code(clerk_me(&app, "user_other", Some(&code)).await).await.1, "invite_invalid", "used up");
    assert_eq!(app.count("users").await, 1);
}
