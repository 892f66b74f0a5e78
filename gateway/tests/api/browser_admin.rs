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
