use serde_json::{Value, json};

use crate::helpers::{PASSWORD, TestApp, contains, error_code};

#[tokio::test]
async fn signup_sets_a_safe_session_cookie_and_me_returns_the_user() {
    let app = TestApp::spawn().await;
    let client = app.browser();
    let res = app.signup(&client, "  Alice@Example.com ").await;
    assert_eq!(res.status(), 201);
    let cookie = res.headers().get("set-cookie").unwrap().to_str().unwrap().to_string();
    assert!(cookie.starts_with("roost_session="), "{cookie}");
    for attr in ["HttpOnly", "SameSite=Lax", "Path=/"] {
        assert!(cookie.contains(attr), "cookie lacks {attr}: {cookie}");
    }
    assert!(!cookie.contains("Secure"), "plain-http origin must not set Secure: {cookie}");
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["user"]["email"], "alice@example.com");

    let me: Value = app.get(&client, "/api/me").await.json().await.unwrap();
    assert_eq!(me["email"], "alice@example.com");
    assert_eq!(me["auth"], "session");

    // Only the hash of the session secret is stored, and the password only as Argon2id.
    let secret = cookie.split(';').next().unwrap().trim_start_matches("roost_session=");
    assert!(!contains(&app.db_bytes(), secret));
    assert!(!contains(&app.db_bytes(), PASSWORD));
    let hash = app.sql("SELECT password_hash FROM users").await;
    assert!(matches!(&hash[0], libsql::Value::Text(h) if h.starts_with("$argon2id$")));
}

#[tokio::test]
async fn https_origins_get_a_secure_host_prefixed_cookie() {
    let app = TestApp::spawn_with(&["--public-origin", "https://roost.example.com"]).await;
    let client = reqwest::Client::new();
    let res = client
        .post(app.url("/api/auth/signup"))
        .header("Origin", "https://roost.example.com")
        .json(&json!({ "email": "s@example.com", "password": PASSWORD }))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    let cookie = res.headers().get("set-cookie").unwrap().to_str().unwrap();
    assert!(cookie.starts_with("__Host-roost_session=") && cookie.contains("Secure"), "{cookie}");
}

#[tokio::test]
async fn duplicate_emails_are_refused_case_insensitively() {
    let app = TestApp::spawn().await;
    app.signed_up_user("bob@example.com").await;
    let (status, code) = error_code(app.signup(&app.browser(), "BOB@example.com").await).await;
    assert_eq!((status, code.as_str()), (409, "email_taken"));
    assert_eq!(app.count("users").await, 1);
}

#[tokio::test]
async fn bad_signup_input_gets_a_clear_error_and_writes_nothing() {
    let app = TestApp::spawn().await;
    let client = app.browser();
    let cases = [
        (json!({ "email": "not-an-email", "password": PASSWORD }), 400, "invalid_email"),
        (json!({ "email": "a@example.com", "password": "short" }), 400, "weak_password"),
        (json!({ "email": "a@example.com" }), 400, "invalid_json"),
        (json!({ "email": "a@example.com", "password": PASSWORD, "admin": true }), 400, "invalid_json"),
        (json!({ "email": 5, "password": PASSWORD }), 400, "invalid_json"),
    ];
    for (body, status, code) in cases {
        let got = error_code(app.post(&client, "/api/auth/signup", &body).await).await;
        assert_eq!(got, (status, code.to_string()), "for {body}");
    }
    let res = client
        .post(app.url("/api/auth/signup"))
        .header("Origin", &app.origin)
        .header("content-type", "application/json")
        .body("{\"email\":")
        .send()
        .await
        .unwrap();
    assert_eq!(error_code(res).await, (400, "invalid_json".into()));
    let res =
        client.post(app.url("/api/auth/signup")).header("Origin", &app.origin).body("email=a").send().await.unwrap();
    assert_eq!(error_code(res).await, (415, "unsupported_media_type".into()));
    let huge = json!({ "email": "a@example.com", "password": "x".repeat(100_000) });
    assert_eq!(error_code(app.post(&client, "/api/auth/signup", &huge).await).await, (413, "body_too_large".into()));
    assert_eq!(app.count("users").await, 0);
    assert_eq!(app.count("sessions").await, 0);
}

#[tokio::test]
async fn wrong_password_and_unknown_email_look_the_same() {
    let app = TestApp::spawn().await;
    app.signed_up_user("carol@example.com").await;
    let client = app.browser();
    for (email, password) in [("carol@example.com", "wrong password"), ("nobody@example.com", PASSWORD)] {
        let res = app.post(&client, "/api/auth/login", &json!({ "email": email, "password": password })).await;
        assert_eq!(error_code(res).await, (401, "invalid_credentials".into()));
    }
    assert_eq!(app.count("sessions").await, 1, "only the signup session exists");
}

#[tokio::test]
async fn login_issues_a_new_session_and_ends_the_old_one() {
    let app = TestApp::spawn().await;
    let (client, _) = app.signed_up_user("dave@example.com").await;
    let old = app.sql("SELECT token_hash FROM sessions").await;
    let res = app.post(&client, "/api/auth/login", &json!({ "email": "DAVE@example.com", "password": PASSWORD })).await;
    assert_eq!(res.status(), 200);
    let now = app.sql("SELECT token_hash FROM sessions").await;
    assert_eq!(now.len(), 1);
    assert_ne!(old, now, "login must rotate the session");
    assert_eq!(app.get(&client, "/api/me").await.status(), 200);
}

#[tokio::test]
async fn logout_ends_the_session_even_for_a_replayed_cookie() {
    let app = TestApp::spawn().await;
    let client = reqwest::Client::new();
    let res = app.signup(&client, "erin@example.com").await;
    let cookie = res.headers().get("set-cookie").unwrap().to_str().unwrap().split(';').next().unwrap().to_string();
    let me = |c: String| {
        let url = app.url("/api/me");
        async move { reqwest::Client::new().get(url).header("cookie", c).send().await.unwrap().status() }
    };
    assert_eq!(me(cookie.clone()).await, 200);
    let res = app.send_as(&cookie, reqwest::Method::POST, "/api/auth/logout", None).await;
    assert_eq!(res.status(), 204);
    assert!(res.headers().get("set-cookie").unwrap().to_str().unwrap().contains("Max-Age=0"));
    assert_eq!(me(cookie).await, 401);
    assert_eq!(app.count("sessions").await, 0);
}

#[tokio::test]
async fn idle_and_absolute_session_expiry_are_enforced() {
    let app = TestApp::spawn().await;
    let (client, _) = app.signed_up_user("fay@example.com").await;
    assert_eq!(app.get(&client, "/api/me").await.status(), 200);
    app.sql("UPDATE sessions SET last_seen_at = last_seen_at - 8 * 86400 RETURNING 1").await;
    assert_eq!(error_code(app.get(&client, "/api/me").await).await, (401, "session_expired".into()));

    let (client, _) = app.signed_up_user("gil@example.com").await;
    app.sql("UPDATE sessions SET expires_at = 1 WHERE user_id = (SELECT id FROM users WHERE email = 'gil@example.com') RETURNING 1").await;
    assert_eq!(app.get(&client, "/api/me").await.status(), 401);
}

#[tokio::test]
async fn login_is_rate_limited_per_email_with_retry_after() {
    let app = TestApp::spawn_with(&["--auth-rate-per-email", "3"]).await;
    let client = app.browser();
    let body = json!({ "email": "hal@example.com", "password": "wrong password" });
    let attempt = || app.post(&client, "/api/auth/login", &body);
    for _ in 0..3 {
        assert_eq!(attempt().await.status(), 401);
    }
    let res = attempt().await;
    let retry_after: u64 = res.headers().get("retry-after").expect("Retry-After").to_str().unwrap().parse().unwrap();
    assert!(retry_after >= 1);
    assert_eq!(error_code(res).await, (429, "rate_limited".into()));
    // Another email from the same IP is still allowed (per-IP quota is larger).
    let res = app
        .post(&client, "/api/auth/login", &json!({ "email": "other@example.com", "password": "wrong password" }))
        .await;
    assert_eq!(res.status(), 401);
}

/// The probe: five wrong guesses a minute from anywhere kept the owner out for good.
#[tokio::test]
async fn guesses_from_elsewhere_do_not_lock_the_owner_out() {
    let app = TestApp::spawn_with(&["--auth-rate-per-email", "3", "--client-ip-header", "x-test-client-ip"]).await;
    app.signed_up_user("ivy@example.com").await;
    let login = |ip: &'static str, password: &'static str| {
        reqwest::Client::new()
            .post(app.url("/api/auth/login"))
            .header("Origin", &app.origin)
            .header("x-test-client-ip", ip)
            .json(&json!({ "email": "ivy@example.com", "password": password }))
            .send()
    };
    for _ in 0..3 {
        assert_eq!(login("203.0.113.9", "a wrong guess").await.unwrap().status(), 401);
    }
    let stopped = login("203.0.113.9", PASSWORD).await.unwrap();
    assert_eq!(error_code(stopped).await, (429, "rate_limited".into()), "the guesser is stopped before any check");
    for _ in 0..5 {
        assert_eq!(login("198.51.100.7", PASSWORD).await.unwrap().status(), 200, "the owner signs in");
    }
}

#[tokio::test]
async fn signup_is_rate_limited_per_ip() {
    let app = TestApp::spawn_with(&["--auth-rate-per-ip", "2"]).await;
    let client = app.browser();
    assert_eq!(app.signup(&client, "i1@example.com").await.status(), 201);
    assert_eq!(app.signup(&client, "i2@example.com").await.status(), 201);
    assert_eq!(error_code(app.signup(&client, "i3@example.com").await).await, (429, "rate_limited".into()));
    assert_eq!(app.count("users").await, 2);
}

#[tokio::test]
async fn cross_site_writes_are_refused() {
    let app = TestApp::spawn().await;
    let client = reqwest::Client::new();
    let body = json!({ "email": "csrf@example.com", "password": PASSWORD });
    let url = app.url("/api/auth/signup");
    let evil = client.post(&url).header("Origin", "https://evil.example").json(&body).send().await.unwrap();
    assert_eq!(error_code(evil).await, (403, "cross_origin".into()));
    let cross_site = client.post(&url).header("Sec-Fetch-Site", "cross-site").json(&body).send().await.unwrap();
    assert_eq!(error_code(cross_site).await, (403, "cross_origin".into()));
    let bare = client.post(&url).json(&body).send().await.unwrap();
    assert_eq!(error_code(bare).await, (403, "cross_origin".into()));
    assert_eq!(app.count("users").await, 0);
    let same_site = client.post(&url).header("Sec-Fetch-Site", "same-origin").json(&body).send().await.unwrap();
    assert_eq!(same_site.status(), 201);
}

#[tokio::test]
async fn logged_out_requests_get_401_in_the_error_shape() {
    let app = TestApp::spawn().await;
    let client = app.browser();
    assert_eq!(error_code(app.get(&client, "/api/me").await).await, (401, "unauthenticated".into()));
    assert_eq!(error_code(app.get(&client, "/api/tokens").await).await, (401, "unauthenticated".into()));
    let forged = client.get(app.url("/api/me")).header("cookie", "roost_session=forged").send().await.unwrap();
    assert_eq!(error_code(forged).await, (401, "session_expired".into()));
}

#[tokio::test]
async fn a_flood_of_sign_ups_and_logins_past_the_hashing_bound_gets_503_and_the_server_stays_up() {
    // One thread hashes and one request may wait; the flood comes from many addresses, so the
    // per-IP limit does not stop it.
    let flags = ["--password-hash-workers", "1", "--password-hash-queue", "1", "--client-ip-header", "X-Real-IP"];
    let app = TestApp::spawn_with(&flags).await;
    app.signed_up_user("known@example.com").await;
    // Both places are taken, as by a burst already under way.
    let held = [app.state.hasher.admit().unwrap(), app.state.hasher.admit().unwrap()];
    let flood = (0..24).map(|i| {
        let (path, email) = if i % 2 == 0 {
            ("/api/auth/signup", format!("flood{i}@example.com"))
        } else {
            ("/api/auth/login", "known@example.com".to_string())
        };
        reqwest::Client::new()
            .post(app.url(path))
            .header("Origin", &app.origin)
            .header("X-Real-IP", format!("10.0.{i}.1"))
            .json(&json!({ "email": email, "password": PASSWORD }))
            .send()
    });
    for res in futures_util::future::join_all(flood).await {
        let res = res.unwrap();
        assert_eq!(res.status(), 503);
        assert_eq!(res.headers()["retry-after"], "1");
        let body: Value = res.json().await.unwrap();
        assert_eq!(body["error"]["code"], "busy", "{body}");
        let message = body["error"]["message"].as_str().unwrap();
        assert!(message.starts_with("The server") && message.ends_with('.'), "a plain sentence: {message}");
    }
    assert_eq!(app.count("users").await, 1, "no refused sign-up wrote anything");

    drop(held);
    let client = app.browser();
    assert_eq!(app.signup(&client, "after@example.com").await.status(), 201);
    let known = json!({ "email": "known@example.com", "password": PASSWORD });
    assert_eq!(app.post(&client, "/api/auth/login", &known).await.status(), 200);
}
