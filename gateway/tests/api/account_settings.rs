//! Account settings (issue 13, item 10): change the password with the current one re-entered,
//! and sign out every other session. Another user's sessions are never touched.

use serde_json::{Value, json};

use crate::helpers::{PASSWORD, TestApp, error_code};

async fn login_cookie(app: &TestApp, email: &str, password: &str) -> Option<String> {
    let res =
        app.post(&reqwest::Client::new(), "/api/auth/login", &json!({ "email": email, "password": password })).await;
    (res.status() == 200).then(|| res.headers()["set-cookie"].to_str().unwrap().split(';').next().unwrap().to_string())
}

async fn me_status(app: &TestApp, cookie: &str) -> u16 {
    app.send_as(cookie, reqwest::Method::GET, "/api/me", None).await.status().as_u16()
}

#[tokio::test]
async fn a_password_change_needs_the_current_one_and_signs_out_the_other_sessions() {
    let app = TestApp::spawn().await;
    let email = "change-pw@example.com";
    let (here, _) = app.signed_up_cookie(email).await;
    let laptop = login_cookie(&app, email, PASSWORD).await.unwrap();
    let (someone_else, _) = app.signed_up_cookie("bystander@example.com").await;

    let wrong = json!({ "current_password": "not it at all", "new_password": "a brand new secret" });
    let res = app.send_as(&here, reqwest::Method::POST, "/api/me/password", Some(&wrong)).await;
    assert_eq!(error_code(res).await, (403, "wrong_password".into()));
    let weak = json!({ "current_password": PASSWORD, "new_password": "short" });
    let res = app.send_as(&here, reqwest::Method::POST, "/api/me/password", Some(&weak)).await;
    assert_eq!(error_code(res).await, (400, "weak_password".into()));
    assert!(login_cookie(&app, email, PASSWORD).await.is_some(), "nothing changed yet");

    let good = json!({ "current_password": PASSWORD, "new_password": "a brand new secret" });
    let res = app.send_as(&here, reqwest::Method::POST, "/api/me/password", Some(&good)).await;
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["signed_out"], 2, "the laptop and the check's login: {body}");
    assert_eq!(me_status(&app, &here).await, 200, "this session stays");
    assert_eq!(me_status(&app, &laptop).await, 401, "the others are signed out");
    assert_eq!(me_status(&app, &someone_else).await, 200, "another user's session is untouched");
    assert!(login_cookie(&app, email, PASSWORD).await.is_none(), "the old password is gone");
    assert!(login_cookie(&app, email, "a brand new secret").await.is_some(), "the new one works");
}

#[tokio::test]
async fn sign_out_everywhere_else_keeps_this_session_and_needs_a_session() {
    let app = TestApp::spawn().await;
    let email = "sign-out-all@example.com";
    let (client, _) = app.signed_up_user(email).await;
    let phone = login_cookie(&app, email, PASSWORD).await.unwrap();
    let res = app.post(&client, "/api/me/sign-out-others", &json!({})).await;
    assert_eq!(res.status(), 200);
    assert_eq!(res.json::<Value>().await.unwrap()["signed_out"], 1);
    assert_eq!(me_status(&app, &phone).await, 401);
    assert_eq!(app.get(&client, "/api/me").await.status(), 200);
    // An API token cannot do it (nor change the password).
    let token = app.create_token(&client, "ci").await["token"].as_str().unwrap().to_string();
    let res = reqwest::Client::new()
        .post(app.url("/api/me/sign-out-others"))
        .bearer_auth(&token)
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(error_code(res).await, (403, "session_required".into()));
}
