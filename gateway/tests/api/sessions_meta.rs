//! Chat titles from the first message, "New chat" reusing an empty one, archive and title
//! search (issue 13, item 7); one user never reaches another's chats.

use serde_json::{Value, json};

use crate::helpers::{TestApp, error_code, wait_until};

async fn patch(app: &TestApp, cookie: &str, key: &str, body: Value) -> reqwest::Response {
    app.send_as(cookie, reqwest::Method::PATCH, &format!("/api/sessions/{key}"), Some(&body)).await
}

fn keys(list: &Value) -> Vec<String> {
    list["sessions"].as_array().unwrap().iter().map(|s| s["key"].as_str().unwrap().to_string()).collect()
}

fn session<'a>(list: &'a Value, key: &str) -> Option<&'a Value> {
    list["sessions"].as_array().unwrap().iter().find(|s| s["key"] == key)
}

#[tokio::test]
async fn a_chat_is_titled_by_its_first_message_and_a_rename_wins() {
    let app = TestApp::spawn().await;
    let (cookie, _) = app.signed_up_cookie("titles@example.com").await;
    let mut ws = app.ws(&cookie, "").await;
    ws.ready().await;
    ws.chat("s-trip", "  Plan a trip   to Rome\nwith all the details").await;
    wait_until("the chat is titled", || async {
        let list = app.json_as(&cookie, "/api/sessions").await;
        session(&list, "s-trip").is_some_and(|s| s["title"] == "Plan a trip to Rome" && s["titled"] == true)
    })
    .await;
    // A rename is kept: a later first-message title never replaces it.
    assert_eq!(patch(&app, &cookie, "s-trip", json!({ "title": "Rome" })).await.status(), 200);
    ws.chat("s-trip", "Something else entirely").await;
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let list = app.json_as(&cookie, "/api/sessions").await;
    assert_eq!(session(&list, "s-trip").unwrap()["title"], "Rome", "{list}");
}

#[tokio::test]
async fn new_chat_reuses_the_empty_one() {
    let app = TestApp::spawn().await;
    let (cookie, _) = app.signed_up_cookie("reuse@example.com").await;
    let first = app.send_as(&cookie, reqwest::Method::POST, "/api/sessions", Some(&json!({}))).await;
    assert_eq!(first.status(), 201);
    let first: Value = first.json().await.unwrap();
    let again = app.send_as(&cookie, reqwest::Method::POST, "/api/sessions", Some(&json!({}))).await;
    assert_eq!(again.status(), 200, "the empty chat is given again");
    assert_eq!(again.json::<Value>().await.unwrap()["key"], first["key"]);
    // Once it has a message, "New chat" is a new one.
    let key = first["key"].as_str().unwrap();
    let mut ws = app.ws(&cookie, "").await;
    ws.ready().await;
    ws.chat(key, "hello there").await;
    wait_until("the message is cached", || async {
        let list = app.json_as(&cookie, "/api/sessions").await;
        session(&list, key).is_some_and(|s| s["titled"] == true)
    })
    .await;
    let third = app.send_as(&cookie, reqwest::Method::POST, "/api/sessions", Some(&json!({}))).await;
    assert_eq!(third.status(), 201);
    assert_ne!(third.json::<Value>().await.unwrap()["key"], first["key"]);
}

#[tokio::test]
async fn chats_are_archived_brought_back_and_searched_by_title() {
    let app = TestApp::spawn().await;
    let (cookie, _) = app.signed_up_cookie("archive@example.com").await;
    let mut made = Vec::new();
    for title in ["Rome trip", "Tax return 2026", "100% done_ok"] {
        let res = app.send_as(&cookie, reqwest::Method::POST, "/api/sessions", Some(&json!({ "title": title }))).await;
        made.push(res.json::<Value>().await.unwrap()["key"].as_str().unwrap().to_string());
    }
    let archived = patch(&app, &cookie, &made[1], json!({ "archived": true })).await;
    assert_eq!(archived.status(), 200);
    assert!(archived.json::<Value>().await.unwrap()["archived_at"].is_i64());
    let listed = app.json_as(&cookie, "/api/sessions").await;
    assert!(!keys(&listed).contains(&made[1]), "an archived chat is not listed: {listed}");
    let shelf = app.json_as(&cookie, "/api/sessions?archived=true").await;
    assert_eq!(keys(&shelf), vec![made[1].clone()], "{shelf}");
    assert_eq!(patch(&app, &cookie, &made[1], json!({ "archived": false })).await.status(), 200);
    assert!(keys(&app.json_as(&cookie, "/api/sessions").await).contains(&made[1]));
    // The main chat stays: the channels talk in it.
    assert_eq!(
        error_code(patch(&app, &cookie, "main", json!({ "archived": true })).await).await,
        (400, "main_chat".into())
    );

    let found = app.json_as(&cookie, "/api/sessions?q=ROME").await;
    assert_eq!(keys(&found), vec![made[0].clone()], "any case: {found}");
    // `%` and `_` are themselves, not wildcards.
    assert_eq!(keys(&app.json_as(&cookie, "/api/sessions?q=0%25%20d").await), vec![made[2].clone()]);
    assert!(keys(&app.json_as(&cookie, "/api/sessions?q=%25%25").await).is_empty());
    assert!(keys(&app.json_as(&cookie, "/api/sessions?q=x_r").await).is_empty());
    assert_eq!(keys(&app.json_as(&cookie, "/api/sessions?q=main").await), vec!["main".to_string()]);
    let long = "x".repeat(101);
    let res = app.send_as(&cookie, reqwest::Method::GET, &format!("/api/sessions?q={long}"), None).await;
    assert_eq!(error_code(res).await, (400, "invalid_search".into()));
    assert_eq!(error_code(patch(&app, &cookie, &made[0], json!({})).await).await, (400, "nothing_to_change".into()));
    let res = patch(&app, &cookie, &made[0], json!({ "archived": "yes" })).await;
    assert_eq!(res.status(), 400);
}

#[tokio::test]
async fn one_user_cannot_rename_archive_or_find_anothers_chats() {
    let app = TestApp::spawn().await;
    let (alice, _) = app.signed_up_cookie("alice-chats@example.com").await;
    let (bob, _) = app.signed_up_cookie("bob-chats@example.com").await;
    let res =
        app.send_as(&alice, reqwest::Method::POST, "/api/sessions", Some(&json!({ "title": "Alice secret" }))).await;
    let key = res.json::<Value>().await.unwrap()["key"].as_str().unwrap().to_string();
    assert_eq!(error_code(patch(&app, &bob, &key, json!({ "title": "mine now" })).await).await.0, 404);
    assert_eq!(error_code(patch(&app, &bob, &key, json!({ "archived": true })).await).await.0, 404);
    assert!(keys(&app.json_as(&bob, "/api/sessions?q=secret").await).is_empty());
    assert!(keys(&app.json_as(&bob, "/api/sessions?archived=true").await).is_empty());
    // Bob's "New chat" is his own, never Alice's empty one.
    let bobs = app.send_as(&bob, reqwest::Method::POST, "/api/sessions", Some(&json!({}))).await;
    assert_ne!(bobs.json::<Value>().await.unwrap()["key"], key.as_str());
    let list = app.json_as(&alice, "/api/sessions").await;
    let mine = session(&list, &key).unwrap();
    assert_eq!((mine["title"].as_str(), mine["archived_at"].is_null()), (Some("Alice secret"), true), "{list}");
}
