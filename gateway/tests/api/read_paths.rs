//! Requests that only read never write the database on their way: with another connection
//! holding the write lock, each of them still answers (a write would wait out the busy timeout
//! and fail with 500).

use serde_json::Value;

use crate::clerk::{claims, clerk_app, sign};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_answer_while_another_connection_holds_the_write_lock() {
    let app = clerk_app(&[]).await;
    let (client, _) = app.signed_up_user("reader@example.com").await;
    let token = app.create_token(&client, "reader").await["token"].as_str().unwrap().to_string();
    let (cookie, _) = app.signed_up_cookie("chatter@example.com").await;
    let mut ws = app.ws(&cookie, "").await;
    ws.ready().await;
    ws.chat("main", "hello").await;
    let clerk = sign(&claims(&app, "user_reader", "sess_reader"));
    let first = reqwest::Client::new().get(app.url("/api/me")).bearer_auth(&clerk).send().await.unwrap();
    assert_eq!(first.status(), 200, "the Clerk user's first sight creates it");
    // Make every "last used" refresh due.
    app.sql("UPDATE sessions SET last_seen_at = last_seen_at - 3600").await;
    app.sql("UPDATE api_tokens SET last_used_at = NULL").await;

    let db = libsql::Builder::new_local(app.db_path()).build().await.unwrap();
    let lock = db.connect().unwrap();
    lock.execute("BEGIN IMMEDIATE", ()).await.unwrap();
    let http = reqwest::Client::new();
    let reads = [
        ("an API token", http.get(app.url("/api/me")).bearer_auth(&token)),
        ("a Clerk session", http.get(app.url("/api/me")).bearer_auth(&clerk)),
        ("a session cookie", http.get(app.url("/api/me")).header("cookie", &cookie)),
        ("the chat list", http.get(app.url("/api/sessions")).header("cookie", &cookie)),
        ("fresh history", http.get(app.url("/api/sessions/main/history")).header("cookie", &cookie)),
    ];
    for (what, request) in reads {
        let res = request.send().await.unwrap();
        let status = res.status();
        let body: Value = res.json().await.unwrap();
        assert_eq!(status, 200, "{what} answered while the database was locked: {body}");
        if what == "fresh history" {
            assert_eq!(body["stale"], false);
            assert_eq!(body["messages"][0]["text"], "hello");
        }
    }
    lock.execute("ROLLBACK", ()).await.unwrap();
}
