//! The admin page and the reset page in Chromium (`web/tests/admin.spec.mjs`).

use crate::browser::run_spec;
use crate::helpers::{PASSWORD, TestApp};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_admin_page_and_a_reset_link_work_in_chromium() {
    let app = TestApp::spawn().await;
    let (admin, member) = ("admin@example.com", "member@example.com");
    app.signed_up_cookie(admin).await;
    app.signed_up_cookie(member).await;
    let conn = app.state.db.conn().unwrap();
    let email = gateway::domain::Email::parse(member).unwrap();
    let user = gateway::db::users::find_by_email(&conn, &email).await.unwrap().unwrap().user;
    let link = gateway::auth::reset::issue(&conn, &user.id, &app.origin).await.unwrap();
    drop(conn);
    tokio::task::spawn_blocking(move || {
        run_spec(
            &app,
            "admin.spec.mjs",
            &[("ADMIN_EMAIL", admin), ("MEMBER_EMAIL", member), ("PASSWORD", PASSWORD), ("RESET_LINK", &link)],
        )
    })
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_login_page_mails_a_reset_link_when_the_server_sends_mail_in_chromium() {
    let smtp = fakes::smtp::FakeSmtp::spawn().await;
    let app = TestApp::spawn_with(&["--smtp-url", &smtp.url(), "--smtp-from", "roost@example.com"]).await;
    let member = "mailed@example.com";
    app.signed_up_cookie(member).await;
    let origin = app.origin.clone();
    tokio::task::spawn_blocking(move || {
        crate::browser::run_spec_at(&origin, "forgot.spec.mjs", &[("MEMBER_EMAIL", member)])
    })
    .await
    .unwrap();
    crate::helpers::wait_until("the mail arrived", || async { !smtp.mails().is_empty() }).await;
    let mails = smtp.mails();
    assert_eq!(mails.len(), 1, "only the account's address got mail");
    assert_eq!(mails[0].to, [member]);
    drop(app);
}
