use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, EncodingKey, Header, encode};
use serde_json::{Value, json};

use crate::helpers::{TestApp, error_code};

pub const ISSUER: &str = "https://clerk.roost.test";
const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/api/fixtures");

fn fixture(name: &str) -> String {
    std::fs::read_to_string(format!("{FIXTURES}/{name}")).unwrap()
}

fn now() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64
}

pub async fn clerk_app(extra: &[&str]) -> TestApp {
    let pem = format!("{FIXTURES}/clerk_test_key.pub.pem");
    let mut flags = vec!["--clerk-issuer", ISSUER, "--clerk-jwt-key", &pem];
    flags.extend_from_slice(extra);
    TestApp::spawn_with(&flags).await
}

pub fn claims(app: &TestApp, sub: &str, sid: &str) -> Value {
    let t = now();
    json!({ "iss": ISSUER, "sub": sub, "sid": sid, "azp": app.origin, "iat": t, "nbf": t - 10, "exp": t + 60 })
}

pub fn sign_with(claims: &Value, pem: &str, kid: &str) -> String {
    let mut header = Header::new(Algorithm::RS256);
    header.kid = Some(kid.to_string());
    encode(&header, claims, &EncodingKey::from_rsa_pem(pem.as_bytes()).unwrap()).unwrap()
}

pub fn sign(claims: &Value) -> String {
    sign_with(claims, &fixture("clerk_test_key.pem"), "ins_test_instance")
}

async fn me_with_bearer(app: &TestApp, token: &str) -> reqwest::Response {
    reqwest::Client::new().get(app.url("/api/me")).bearer_auth(token).send().await.unwrap()
}

#[tokio::test]
async fn a_valid_session_token_signs_in_and_creates_the_user_once() {
    let app = clerk_app(&[]).await;
    let token = sign(&claims(&app, "user_abc", "sess_1"));
    let first: Value = me_with_bearer(&app, &token).await.json().await.unwrap();
    assert_eq!(first["auth"], "clerk");
    let second: Value = me_with_bearer(&app, &token).await.json().await.unwrap();
    assert_eq!(first["id"], second["id"]);
    // The same token works from the `__session` cookie, as Clerk's frontend sets it.
    let res = reqwest::Client::new()
        .get(app.url("/api/me"))
        .header("cookie", format!("__session={token}"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(app.count("users").await, 1);
}

#[tokio::test]
async fn forged_and_invalid_tokens_are_refused_and_create_no_user() {
    let app = clerk_app(&[]).await;
    let good = claims(&app, "user_abc", "sess_1");
    let with = |patch: Value| {
        let mut c = good.clone();
        for (k, v) in patch.as_object().unwrap() {
            if v.is_null() {
                c.as_object_mut().unwrap().remove(k);
            } else {
                c[k] = v.clone();
            }
        }
        sign(&c)
    };
    let unsigned = {
        let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"JWT"}"#);
        let payload = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&good).unwrap());
        format!("{header}.{payload}.")
    };
    let hs256_with_public_key = {
        let mut header = Header::new(Algorithm::HS256);
        header.kid = Some("ins_test_instance".into());
        encode(&header, &good, &EncodingKey::from_secret(fixture("clerk_test_key.pub.pem").as_bytes())).unwrap()
    };
    let tampered = {
        let token = sign(&good);
        let mut parts: Vec<String> = token.split('.').map(str::to_string).collect();
        let mut payload = good.clone();
        payload["sub"] = json!("user_attacker");
        parts[1] = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&payload).unwrap());
        parts.join(".")
    };
    let cases = [
        ("wrong key", sign_with(&good, &fixture("other_key.pem"), "ins_test_instance")),
        ("alg none", unsigned),
        ("HS256 with the public key", hs256_with_public_key),
        ("tampered payload", tampered),
        ("wrong azp", with(json!({ "azp": "https://evil.example" }))),
        ("missing azp", with(json!({ "azp": null }))),
        ("wrong iss", with(json!({ "iss": "https://clerk.other.test" }))),
        ("expired", with(json!({ "exp": now() - 10 }))),
        ("not yet valid", with(json!({ "nbf": now() + 60 }))),
        ("no sid", with(json!({ "sid": null }))),
        ("machine sub", with(json!({ "sub": "mch_123" }))),
        ("garbage", "not.a.jwt".to_string()),
    ];
    for (why, token) in cases {
        let res = me_with_bearer(&app, &token).await;
        assert_eq!(error_code(res).await.0, 401, "{why} must be refused");
    }
    assert_eq!(app.count("users").await, 0, "no user is created by a refused token");
}

#[tokio::test]
async fn expiry_allows_five_seconds_of_skew_and_no_more() {
    let app = clerk_app(&[]).await;
    let mut c = claims(&app, "user_skew", "sess_1");
    c["exp"] = json!(now() - 2);
    assert_eq!(me_with_bearer(&app, &sign(&c)).await.status(), 200);
    c["exp"] = json!(now() - 8);
    assert_eq!(me_with_bearer(&app, &sign(&c)).await.status(), 401);
}

#[tokio::test]
async fn keys_come_from_a_cached_jwks_url() {
    let fetches = Arc::new(AtomicUsize::new(0));
    let counter = fetches.clone();
    let jwks: Value = serde_json::from_str(&fixture("clerk_test_jwks.json")).unwrap();
    let router = axum::Router::new().route(
        "/.well-known/jwks.json",
        axum::routing::get(move || {
            counter.fetch_add(1, Ordering::SeqCst);
            let body = jwks.clone();
            async move { axum::Json(body) }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let jwks_url = format!("http://{}/.well-known/jwks.json", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });

    let app = TestApp::spawn_with(&["--clerk-issuer", ISSUER, "--clerk-jwks-url", &jwks_url]).await;
    let token = sign(&claims(&app, "user_jwks", "sess_1"));
    for _ in 0..3 {
        assert_eq!(me_with_bearer(&app, &token).await.status(), 200);
    }
    assert_eq!(fetches.load(Ordering::SeqCst), 1, "the key set is cached");
    let unknown_kid = sign_with(&claims(&app, "user_jwks", "sess_1"), &fixture("clerk_test_key.pem"), "ins_unknown");
    assert_eq!(me_with_bearer(&app, &unknown_kid).await.status(), 401);
    assert_eq!(me_with_bearer(&app, &unknown_kid).await.status(), 401);
    assert!(fetches.load(Ordering::SeqCst) <= 2, "unknown kids refetch at most once a minute");
}

#[tokio::test]
async fn a_failing_jwks_url_gets_a_plain_answer_and_is_not_hammered() {
    let fetches = Arc::new(AtomicUsize::new(0));
    let counter = fetches.clone();
    let router = axum::Router::new().route(
        "/.well-known/jwks.json",
        axum::routing::get(move || {
            counter.fetch_add(1, Ordering::SeqCst);
            async { (axum::http::StatusCode::BAD_GATEWAY, "upstream exploded at 10.1.2.3") }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let jwks_url = format!("http://{}/.well-known/jwks.json", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    let app = TestApp::spawn_with(&["--clerk-issuer", ISSUER, "--clerk-jwks-url", &jwks_url]).await;
    let token = sign(&claims(&app, "user_down", "sess_1"));
    for _ in 0..3 {
        let res = me_with_bearer(&app, &token).await;
        assert_eq!(res.status(), 503);
        let body = res.text().await.unwrap();
        assert!(body.contains("auth_keys_unavailable") && body.contains("Try again"), "{body}");
        for internal in ["502", "exploded", "10.1.2.3", "127.0.0.1", "error sending", "status"] {
            assert!(!body.contains(internal), "{internal:?} reached the client: {body}");
        }
    }
    assert_eq!(fetches.load(Ordering::SeqCst), 1, "a failure is remembered for a few seconds");
}
