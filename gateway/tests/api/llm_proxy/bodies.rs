//! Request bodies: malformed ones refused before the provider, the 4 MiB limit.

use super::*;

#[tokio::test]
async fn malformed_bodies_are_refused_and_never_forwarded() {
    let proxy = Proxy::start().await;
    let send = |body: &'static str| {
        proxy
            .client
            .post(proxy.app.url(CHAT))
            .bearer_auth(&proxy.credential)
            .header("content-type", "application/json")
            .body(body)
            .send()
    };
    for (body, code) in [
        ("not json", "invalid_json"),
        ("[1, 2]", "invalid_json"),
        (r#"{"messages": []}"#, "invalid_request"),
        (r#"{"model": 4, "messages": []}"#, "invalid_request"),
        (r#"{"model": "gpt-test"}"#, "invalid_request"),
        (r#"{"model": "gpt-test", "messages": "hi"}"#, "invalid_request"),
    ] {
        assert_eq!(error_code(send(body).await.unwrap()).await, (400, code.into()), "{body}");
    }
    let res = proxy
        .client
        .post(proxy.app.url(MESSAGES))
        .header("x-api-key", &proxy.credential)
        .body("{")
        .send()
        .await
        .unwrap();
    assert_eq!(error_code(res).await, (400, "invalid_json".into()));
    assert!(proxy.fake.requests().is_empty());
    assert!(usage_rows(&proxy.app).await.is_empty());
}

#[tokio::test]
async fn bodies_up_to_4_mib_are_forwarded_and_larger_ones_refused() {
    let proxy = Proxy::start().await;
    let limit = gateway::routes::LLM_BODY_LIMIT;
    let with_padding = |len: usize| {
        let mut body = chat(false);
        body["messages"][0]["content"] = json!("");
        let base = body.to_string().len();
        body["messages"][0]["content"] = json!("x".repeat(len - base));
        let bytes = body.to_string();
        assert_eq!(bytes.len(), len);
        bytes
    };
    let res = proxy
        .client
        .post(proxy.app.url(CHAT))
        .bearer_auth(&proxy.credential)
        .body(with_padding(limit + 1))
        .send()
        .await
        .unwrap();
    assert_eq!(error_code(res).await, (413, "body_too_large".into()));
    assert!(proxy.fake.requests().is_empty());

    let res = proxy
        .client
        .post(proxy.app.url(CHAT))
        .bearer_auth(&proxy.credential)
        .body(with_padding(limit))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200, "a body of exactly the limit goes through");
    assert_eq!(proxy.fake.requests().len(), 1);
}
