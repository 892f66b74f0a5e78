//! Operator admin (issue 15, item 7): the first account is the admin; `/api/admin/*` answers
//! admins only (403 and an audit row for anyone else); every action is audited; credits move
//! through the ledger and the books still balance; suspension blocks login, tokens and the relay.

use clap::Parser;
use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::{PASSWORD, TestApp, error_code, wait_until};

async fn audit_rows(app: &TestApp, allowed: bool) -> i64 {
    let rows = app.sql(&format!("SELECT count(*) FROM admin_audit WHERE allowed = {}", i64::from(allowed))).await;
    match rows[0] {
        libsql::Value::Integer(n) => n,
        ref other => panic!("{other:?}"),
    }
}

async fn last_action(app: &TestApp) -> String {
    match &app.sql("SELECT action FROM admin_audit ORDER BY id DESC LIMIT 1").await[0] {
        libsql::Value::Text(action) => action.clone(),
        other => panic!("{other:?}"),
    }
}

/// `roost admin <task…>` against the test's database, as the operator runs it.
async fn roost_admin(app: &TestApp, task: &[&str]) -> anyhow::Result<()> {
    let dir = app.dir.path().to_str().unwrap().to_string();
    let argv = [&["roost", "admin", "--data-dir", dir.as_str()], task].concat();
    let gateway::config::Command::Admin(args) = gateway::config::Cli::try_parse_from(argv).unwrap().command else {
        unreachable!()
    };
    gateway::admin::run(args).await
}

#[tokio::test]
async fn only_admins_get_in_and_every_refusal_is_audited() {
    let app = TestApp::spawn().await;
    let (admin, admin_id) = app.signed_up_cookie("first@example.com").await;
    let (user, _) = app.signed_up_cookie("second@example.com").await;
    let me: Value = app.json_as(&admin, "/api/me").await;
    assert!(me["id"] == admin_id.as_str());

    // Every admin operation the OpenAPI document lists, so a new one cannot be left unguarded.
    let doc: Value = app.json_as(&user, "/api/openapi.json").await;
    let mut routes: Vec<(Method, String)> = Vec::new();
    for (path, ops) in doc["paths"].as_object().unwrap() {
        let Some(rest) = path.strip_prefix("/api/admin/") else { continue };
        let target = if rest.starts_with("invites/") { "inv_someone" } else { admin_id.as_str() };
        for method in ops.as_object().unwrap().keys() {
            let method = Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
            routes.push((method, path.replace("{id}", target)));
        }
    }
    assert_eq!(routes.len(), 11, "the admin operations: {routes:?}");
    let body = json!({ "delta": 5, "reason": "mine" });
    for (n, (method, path)) in routes.iter().enumerate() {
        let body = (*method != Method::GET && *method != Method::DELETE).then_some(&body);
        let res = app.send_as(&user, method.clone(), path, body).await;
        assert_eq!(error_code(res).await, (403, "admin_only".into()), "{method} {path}");
        assert_eq!(audit_rows(&app, false).await, n as i64 + 1, "the attempt at {method} {path} is logged");
        assert_eq!(last_action(&app).await, format!("{method} {path}"));
    }
    assert_eq!(audit_rows(&app, true).await, 0, "nothing was done");
    assert_eq!(app.count("credit_grants").await, 0);

    // Not even the admin's own API token: admin work needs a signed-in session.
    let client = reqwest::Client::new();
    let token = client
        .post(app.url("/api/tokens"))
        .header("Origin", &app.origin)
        .header("cookie", &admin)
        .json(&json!({ "name": "ci" }))
        .send()
        .await
        .unwrap()
        .json::<Value>()
        .await
        .unwrap()["token"]
        .as_str()
        .unwrap()
        .to_string();
    let res = client.get(app.url("/api/admin/users")).bearer_auth(&token).send().await.unwrap();
    assert_eq!(error_code(res).await, (403, "admin_only".into()));
    let res = reqwest::get(app.url("/api/admin/users")).await.unwrap();
    assert_eq!(res.status(), 401, "signed out is 401, as everywhere");

    let list: Value = app.json_as(&admin, "/api/admin/users").await;
    let users = list["users"].as_array().unwrap();
    assert_eq!(users.len(), 2);
    assert_eq!((users[0]["email"].as_str(), users[0]["is_admin"].as_bool()), (Some("first@example.com"), Some(true)));
    assert_eq!(users[1]["is_admin"], false);
    for field in ["created_at", "machine_state", "memory_bytes", "last_activity_at", "balance", "suspended_at"] {
        assert!(users[1].get(field).is_some(), "{field} in {}", users[1]);
    }

    // `roost admin grant-admin` makes the second one an admin too, and says so in the log.
    roost_admin(&app, &["grant-admin", "second@example.com"]).await.unwrap();
    assert_eq!(app.send_as(&user, Method::GET, "/api/admin/users", None).await.status(), 200);
    assert_eq!(last_action(&app).await, "user.grant_admin");
}

#[tokio::test]
async fn credit_adjustments_go_through_the_ledger_with_a_reason_and_the_books_balance() {
    let app = TestApp::spawn().await;
    let (admin, _) = app.signed_up_cookie("boss@example.com").await;
    let (_, user_id) = app.signed_up_cookie("customer@example.com").await;
    let path = format!("/api/admin/users/{user_id}/credits");
    let adjust = |delta: i64, reason: &str| json!({ "delta": delta, "reason": reason });

    for bad in [adjust(0, "nothing"), adjust(50, ""), adjust(50, "x"), adjust(100_000_000, "too much")] {
        let res = app.send_as(&admin, Method::POST, &path, Some(&bad)).await;
        assert_eq!(error_code(res).await, (400, "invalid_request".into()), "{bad}");
    }
    let before: Value = app.json_as(&admin, &format!("/api/admin/users/{user_id}")).await;
    let start = before["user"]["balance"].as_i64().unwrap();

    let res = app.send_as(&admin, Method::POST, &path, Some(&adjust(500, "outage refund"))).await;
    assert_eq!(res.status(), 200);
    let added: Value = res.json().await.unwrap();
    assert_eq!((added["moved"].as_i64(), added["balance"].as_i64()), (Some(500), Some(start + 500)));
    let res = app.send_as(&admin, Method::POST, &path, Some(&adjust(-200, "granted by mistake"))).await;
    let taken: Value = res.json().await.unwrap();
    assert_eq!((taken["moved"].as_i64(), taken["balance"].as_i64()), (Some(-200), Some(start + 300)));
    // Never below zero: a take is capped by what is there.
    let res = app.send_as(&admin, Method::POST, &path, Some(&adjust(-10_000_000, "close the account"))).await;
    let emptied: Value = res.json().await.unwrap();
    assert_eq!((emptied["moved"].as_i64(), emptied["balance"].as_i64()), (Some(-(start + 300)), Some(0)));

    let detail: Value = app.json_as(&admin, &format!("/api/admin/users/{user_id}")).await;
    let ledger = detail["ledger"].as_array().unwrap();
    let refs = |r: &Value| r["reference"].as_str().map(str::to_string);
    assert!(ledger.iter().any(|r| r["delta"] == 500
        && r["entry_type"] == "grant"
        && refs(r) == added["reference"].as_str().map(Into::into)));
    assert!(ledger.iter().any(|r| r["delta"] == -200
        && r["entry_type"] == "adjust"
        && refs(r) == taken["reference"].as_str().map(Into::into)));
    let audit = detail["audit"].as_array().unwrap();
    assert_eq!(audit.len(), 3, "one row per adjustment: {audit:?}");
    assert!(audit.iter().all(|r| r["action"] == "credits.adjust" && r["actor_email"] == "boss@example.com"));
    assert!(audit.iter().any(|r| r["detail"].as_str().unwrap().ends_with("outage refund")));

    let conn = app.state.db.conn().unwrap();
    assert_eq!(gateway::db::credits::invariant_violations(&conn).await.unwrap(), Vec::<String>::new());
    drop(conn);
    roost_admin(&app, &["reconcile-credits"]).await.expect("the books check passes");
    roost_admin(&app, &["adjust-credits", "customer@example.com", "-5", "--reason", "from the command line"])
        .await
        .unwrap();
    roost_admin(&app, &["adjust-credits", "customer@example.com", "25", "--reason", "from the command line"])
        .await
        .unwrap();
    roost_admin(&app, &["reconcile-credits"]).await.expect("the books check still passes");
    let detail: Value = app.json_as(&admin, &format!("/api/admin/users/{user_id}")).await;
    assert_eq!(detail["user"]["balance"], 25);
    assert_eq!(detail["audit"].as_array().unwrap().len(), 5);
}

#[tokio::test]
async fn a_suspended_user_cannot_log_in_use_tokens_or_chat_and_their_agent_stops() {
    let app = TestApp::spawn_with(&["--credential-recheck-secs", "1"]).await;
    let (admin, _) = app.signed_up_cookie("op@example.com").await;
    let email = "trouble@example.com";
    let (cookie, user_id) = app.signed_up_cookie(email).await;
    let client = reqwest::Client::new();
    let token = client
        .post(app.url("/api/tokens"))
        .header("Origin", &app.origin)
        .header("cookie", &cookie)
        .json(&json!({ "name": "script" }))
        .send()
        .await
        .unwrap()
        .json::<Value>()
        .await
        .unwrap()["token"]
        .as_str()
        .unwrap()
        .to_string();
    let mut ws = app.ws(&cookie, "").await;
    ws.ready().await;
    let user = gateway::domain::UserId::parse(&user_id).unwrap();
    assert!(app.state.machines.is_up(&user).await);

    let res = app.send_as(&admin, Method::POST, &format!("/api/admin/users/{user_id}/suspend"), None).await;
    assert_eq!(res.status(), 204);
    assert_eq!(ws.closed().await.0, 4401, "the open chat closes");
    wait_until("the agent stopped", || async { !app.state.machines.is_up(&user).await }).await;

    let login = app.post(&client, "/api/auth/login", &json!({ "email": email, "password": PASSWORD })).await;
    assert_eq!(error_code(login).await, (403, "account_suspended".into()));
    let res = client.get(app.url("/api/me")).bearer_auth(&token).send().await.unwrap();
    assert_eq!(error_code(res).await, (403, "account_suspended".into()));
    assert_eq!(app.send_as(&cookie, Method::GET, "/api/me", None).await.status(), 401, "sessions ended");
    let refusal = app.ws_upgrade_refusal(&cookie, "").await;
    assert_eq!(refusal.status(), 401, "no new chat");
    let res = app.send_as(&admin, Method::POST, &format!("/api/admin/users/{user_id}/restart"), None).await;
    assert_eq!(error_code(res).await, (409, "account_suspended".into()), "an admin cannot start it either");

    let res = app.send_as(&admin, Method::POST, &format!("/api/admin/users/{user_id}/unsuspend"), None).await;
    assert_eq!(res.status(), 204);
    let login = app.post(&client, "/api/auth/login", &json!({ "email": email, "password": PASSWORD })).await;
    assert_eq!(login.status(), 200);
    assert_eq!(client.get(app.url("/api/me")).bearer_auth(&token).send().await.unwrap().status(), 200);
    let actions = app.sql("SELECT group_concat(action, ',') FROM admin_audit WHERE allowed = 1").await;
    assert_eq!(actions[0], libsql::Value::Text("user.suspend,user.unsuspend".into()));
}

#[tokio::test]
async fn a_suspension_from_the_command_line_reaches_the_running_server() {
    let app = TestApp::spawn_with(&["--credential-recheck-secs", "1"]).await;
    let (_admin, _) = app.signed_up_cookie("op@example.com").await;
    let (cookie, user_id) = app.signed_up_cookie("cli@example.com").await;
    let mut ws = app.ws(&cookie, "").await;
    ws.ready().await;
    roost_admin(&app, &["suspend", "cli@example.com"]).await.unwrap();
    assert_eq!(ws.closed().await.0, 4401);
    let user = gateway::domain::UserId::parse(&user_id).unwrap();
    wait_until("the agent stopped", || async { !app.state.machines.is_up(&user).await }).await;
    assert_eq!(last_action(&app).await, "user.suspend");
}

#[tokio::test]
async fn admins_restart_reprovision_invite_and_read_events_and_each_is_audited() {
    let app = TestApp::spawn().await;
    let (admin, admin_id) = app.signed_up_cookie("root@example.com").await;
    let (cookie, user_id) = app.signed_up_cookie("agent-owner@example.com").await;
    let mut ws = app.ws(&cookie, "").await;
    ws.ready().await;
    drop(ws);
    let user = gateway::domain::UserId::parse(&user_id).unwrap();

    let res = app.send_as(&admin, Method::POST, &format!("/api/admin/users/{user_id}/restart"), None).await;
    assert_eq!(res.status(), 202);
    assert_eq!(last_action(&app).await, "machine.restart");
    wait_until("it is back", || async { app.state.machines.is_up(&user).await }).await;

    let path = format!("/api/admin/users/{user_id}/reprovision");
    let res = app.send_as(&admin, Method::POST, &path, Some(&json!({ "delete_data": false }))).await;
    assert_eq!(error_code(res).await, (400, "confirm_required".into()));
    let res = app.send_as(&admin, Method::POST, &path, Some(&json!({ "delete_data": true }))).await;
    assert_eq!(res.status(), 202);
    assert_eq!(last_action(&app).await, "machine.reprovision");
    wait_until("a fresh one is up", || async { app.state.machines.is_up(&user).await }).await;

    let detail: Value = app.json_as(&admin, &format!("/api/admin/users/{user_id}")).await;
    let reasons: Vec<&str> = detail["events"].as_array().unwrap().iter().filter_map(|e| e["reason"].as_str()).collect();
    assert!(reasons.iter().any(|r| r.contains("restarting at an admin's request")), "{reasons:?}");
    assert!(reasons.iter().any(|r| r.contains("re-provisioning")), "{reasons:?}");

    // The CLI, in its own process, reads the same facts from the database.
    let listed = crate::revocations::admin(&app, &["users"]).await;
    let owner = listed.lines().find(|l| l.contains("agent-owner@example.com")).expect(&listed);
    let columns: Vec<&str> = owner.split('\t').collect();
    assert_eq!(columns[..3], [user_id.as_str(), "agent-owner@example.com", "-"], "{owner}");
    assert_eq!(columns[4], "ready", "the machine's state: {owner}");
    assert!(columns[6].parse::<i64>().is_ok(), "a last activity time: {owner}");
    assert!(listed.lines().any(|l| l.starts_with(&format!("{admin_id}\troot@example.com\tadmin\t"))), "{listed}");
    let events = crate::revocations::admin(&app, &["events", "agent-owner@example.com", "--limit", "50"]).await;
    assert!(events.contains("restarting at an admin's request"), "{events}");
    assert!(events.lines().last().is_some_and(|l| l.contains("\tready\t")), "newest last: {events}");

    let res =
        app.send_as(&admin, Method::POST, "/api/admin/invites", Some(&json!({ "uses": 3, "expires_in": "2h" }))).await;
    assert_eq!(res.status(), 201);
    let made: Value = res.json().await.unwrap();
    assert!(made["code"].as_str().unwrap().starts_with(made["id"].as_str().unwrap()));
    let bad = json!({ "uses": 0 });
    let res = app.send_as(&admin, Method::POST, "/api/admin/invites", Some(&bad)).await;
    assert_eq!(error_code(res).await.0, 400);
    let list: Value = app.json_as(&admin, "/api/admin/invites").await;
    assert_eq!(list["invites"][0]["uses_left"], 3);
    assert!(!list.to_string().contains(made["code"].as_str().unwrap()), "the code is shown once only");
    let id = made["id"].as_str().unwrap();
    let res = app.send_as(&admin, Method::DELETE, &format!("/api/admin/invites/{id}"), None).await;
    assert_eq!(res.status(), 204);
    assert_eq!(app.send_as(&admin, Method::DELETE, &format!("/api/admin/invites/{id}"), None).await.status(), 404);

    let res = app.send_as(&admin, Method::POST, &format!("/api/admin/users/{admin_id}/suspend"), None).await;
    assert_eq!(error_code(res).await, (400, "invalid_request".into()), "not yourself");
    let res = app.send_as(&admin, Method::GET, "/api/admin/users/not-a-user", None).await;
    assert_eq!(error_code(res).await.0, 404);

    let audit: Value = app.json_as(&admin, "/api/admin/audit").await;
    let actions: Vec<&str> = audit["audit"].as_array().unwrap().iter().map(|r| r["action"].as_str().unwrap()).collect();
    assert_eq!(actions, ["invite.revoke", "invite.create", "machine.reprovision", "machine.restart"]);
}
