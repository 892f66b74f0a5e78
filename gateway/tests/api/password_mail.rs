//! "Forgot password" by mail (issue 13, item 11) against the fake SMTP server: the same
//! sentence whether the address has an account or not, the link arrives and works once, each
//! address gets a bounded number of mails, and a refusing SMTP server changes nothing visible.

use fakes::smtp::FakeSmtp;
use serde_json::{Value, json};

use crate::helpers::{PASSWORD, TestApp, error_code, wait_until};

async fn mail_app(smtp: &FakeSmtp) -> TestApp {
    TestApp::spawn_with(&["--smtp-url", &smtp.url(), "--smtp-from", "Roost <roost@example.com>"]).await
}

async fn forgot(app: &TestApp, email: &str) -> (u16, Value) {
    let res = app.post(&reqwest::Client::new(), "/api/auth/forgot", &json!({ "email": email })).await;
    (res.status().as_u16(), res.json().await.unwrap())
}

/// The reset link in a mail, quoted-printable or not.
fn link_in(data: &str) -> String {
    let text = data.replace("=\r\n", "").replace("=3D", "=");
    let start = text.find("http://").expect("a link in the mail");
    text[start..].split_whitespace().next().unwrap().to_string()
}

#[tokio::test]
async fn a_forgotten_password_is_mailed_the_same_way_for_every_address() {
    let smtp = FakeSmtp::spawn().await;
    let app = mail_app(&smtp).await;
    let email = "mailme@example.com";
    let (cookie, _) = app.signed_up_cookie(email).await;
    let policy: Value = reqwest::get(app.url("/api/auth/policy")).await.unwrap().json().await.unwrap();
    assert_eq!(policy["password_reset_mail"], true);

    let unknown = forgot(&app, "nobody@example.com").await;
    let known = forgot(&app, email).await;
    assert_eq!(known.0, 202);
    assert_eq!(known, unknown, "the same answer either way");
    assert!(known.1["message"].as_str().unwrap().starts_with("If an account uses this email"));
    wait_until("the mail arrived", || async { !smtp.mails().is_empty() }).await;
    let mails = smtp.mails();
    assert_eq!(mails.len(), 1, "nothing for the unknown address");
    assert_eq!((mails[0].from.as_str(), mails[0].to.as_slice()), ("roost@example.com", &[email.to_string()][..]));
    let link = link_in(&mails[0].data);
    assert!(link.starts_with(&format!("{}/reset#token=", app.origin)), "{link}");

    let token = link.split_once("#token=").unwrap().1;
    let client = reqwest::Client::new();
    let first = json!({ "token": token, "new_password": "mailed new password" });
    assert_eq!(app.post(&client, "/api/auth/reset", &first).await.status(), 200);
    assert_eq!(app.send_as(&cookie, reqwest::Method::GET, "/api/me", None).await.status(), 401, "signed out");
    let again = json!({ "token": token, "new_password": "and once more please" });
    assert_eq!(error_code(app.post(&client, "/api/auth/reset", &again).await).await.1, "reset_link_invalid");
    let login = app
        .post(&reqwest::Client::new(), "/api/auth/login", &json!({ "email": email, "password": "mailed new password" }))
        .await;
    assert_eq!(login.status(), 200);
}

#[tokio::test]
async fn each_address_gets_a_few_mails_and_a_refusing_server_changes_no_answer() {
    let smtp = FakeSmtp::spawn().await;
    let app = mail_app(&smtp).await;
    let email = "often@example.com";
    app.signed_up_cookie(email).await;

    smtp.reject_next_mail("451 4.3.0 try again later");
    assert_eq!(forgot(&app, email).await.0, 202, "the refusal is logged, not shown");
    wait_until("the server was asked", || async { smtp.connections() >= 1 }).await;
    for _ in 0..4 {
        assert_eq!(forgot(&app, email).await.0, 202);
    }
    wait_until("two mails arrived", || async { smtp.mails().len() >= 2 }).await;
    // Let any stray delivery land before counting.
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert_eq!(smtp.mails().len(), 2, "3 per address per 15 minutes, the refused one included");
    let other = "other@example.com";
    app.signed_up_cookie(other).await;
    assert_eq!(forgot(&app, other).await.0, 202);
    wait_until("another address is not held back", || async { smtp.mails().iter().any(|m| m.to == [other]) }).await;
}

#[tokio::test]
async fn without_mail_the_server_says_to_ask_the_operator() {
    let app = TestApp::spawn().await;
    app.signed_up_cookie("plain@example.com").await;
    let policy: Value = reqwest::get(app.url("/api/auth/policy")).await.unwrap().json().await.unwrap();
    assert_eq!(policy["password_reset_mail"], false);
    let res = app.post(&reqwest::Client::new(), "/api/auth/forgot", &json!({ "email": "plain@example.com" })).await;
    let status = res.status();
    let body: Value = res.json().await.unwrap();
    assert_eq!(status, 404);
    assert!(body["error"]["message"].as_str().unwrap().contains("Ask its operator"), "{body}");
    let _ = PASSWORD;
}
