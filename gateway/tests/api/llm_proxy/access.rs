//! Who may call the proxy, and that the operator's key goes upstream only, never back.

use super::*;

#[tokio::test]
async fn the_provider_gets_the_operator_key_and_never_the_agent_credential() {
    let proxy = Proxy::start().await;
    let res = proxy
        .openai(&chat(true))
        .header("x-custom", "agent-side")
        .header("cookie", "roost_session=abc")
        .header("openai-organization", "org-agent")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    res.text().await.unwrap();
    let res = proxy.anthropic(&anthropic_chat(false)).header("x-custom", "agent-side").send().await.unwrap();
    assert_eq!(res.status(), 200);
    res.text().await.unwrap();
    let res =
        proxy.client.get(proxy.app.url("/llm/openai/v1/models")).bearer_auth(&proxy.credential).send().await.unwrap();
    assert_eq!(res.status(), 200);
    let models: Value = res.json().await.unwrap();
    assert_eq!(models["data"][0]["id"], "fake-model");

    let sent = proxy.fake.requests();
    assert_eq!(sent.len(), 3);
    assert_eq!(sent[0].header("authorization"), Some(format!("Bearer {OPERATOR_KEY}").as_str()));
    assert_eq!(sent[1].header("x-api-key"), Some(OPERATOR_KEY));
    assert_eq!(sent[1].header("authorization"), None);
    assert_eq!(sent[2].header("authorization"), Some(format!("Bearer {OPERATOR_KEY}").as_str()));
    for request in &sent {
        for (name, value) in &request.headers {
            assert!(
                !value.contains("rak_") && !value.contains(&proxy.credential),
                "{name} carries the agent credential"
            );
        }
        for name in ["cookie", "x-custom", "openai-organization"] {
            assert_eq!(request.header(name), None, "{name} was forwarded");
        }
    }
}

#[tokio::test]
async fn only_a_genuine_agent_credential_of_a_live_user_opens_the_proxy() {
    let proxy = Proxy::start().await;
    let app = &proxy.app;
    let refused = |res: Response| async move {
        assert_eq!(error_code(res).await, (401, "invalid_llm_credential".into()));
    };
    let api = Client::new();

    refused(api.post(app.url(CHAT)).json(&chat(false)).send().await.unwrap()).await;
    let forged = format!("rak_{}.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", proxy.user);
    refused(api.post(app.url(CHAT)).bearer_auth(&forged).json(&chat(false)).send().await.unwrap()).await;

    // A signed-in browser session is not an agent.
    let (browser, bob) = app.signed_up_user("bob@example.com").await;
    refused(browser.post(app.url(CHAT)).header("Origin", &app.origin).json(&chat(false)).send().await.unwrap()).await;
    // Nor is an API token.
    let token = app.create_token(&browser, "cli").await;
    let token = token["token"].as_str().unwrap();
    for path in [CHAT, MESSAGES] {
        refused(api.post(app.url(path)).bearer_auth(token).json(&chat(false)).send().await.unwrap()).await;
    }
    refused(api.post(app.url(MESSAGES)).header("x-api-key", token).json(&anthropic_chat(false)).send().await.unwrap())
        .await;

    // One user's tag does not vouch for another user's id.
    let swapped = proxy.credential.replace(&proxy.user, &bob);
    assert_ne!(swapped, proxy.credential);
    refused(api.post(app.url(CHAT)).bearer_auth(&swapped).json(&chat(false)).send().await.unwrap()).await;
    // The OpenAI routes take the credential as Bearer only.
    refused(api.post(app.url(CHAT)).header("x-api-key", &proxy.credential).json(&chat(false)).send().await.unwrap())
        .await;
    refused(api.get(app.url("/llm/openai/v1/models")).send().await.unwrap()).await;

    // A deleted user's credential stops working.
    let conn = app.state.db.conn().unwrap();
    conn.execute("UPDATE users SET deleted_at = 1 WHERE id = ?1", [proxy.user.as_str()]).await.unwrap();
    refused(proxy.openai(&chat(false)).send().await.unwrap()).await;
    refused(proxy.anthropic(&anthropic_chat(false)).send().await.unwrap()).await;

    assert!(proxy.fake.requests().is_empty(), "nothing was forwarded");
    assert!(usage_rows(app).await.is_empty());
}

#[tokio::test]
async fn no_response_ever_carries_the_operator_key() {
    let proxy = Proxy::start().await;
    let mut seen = Vec::new();
    let keep = |res: Response| {
        let headers = format!("{:?}", res.headers());
        async move {
            let (body, _) = read_to_end(res).await;
            [headers.into_bytes(), body].concat()
        }
    };
    seen.push(keep(proxy.openai(&chat(true)).send().await.unwrap()).await);
    seen.push(keep(proxy.openai(&chat(false)).send().await.unwrap()).await);
    seen.push(keep(proxy.anthropic(&anthropic_chat(true)).send().await.unwrap()).await);
    for fail in [FailMode::Status(401), FailMode::Status(429), FailMode::Status(500), FailMode::DropMidStream] {
        proxy.fake.fail_next(fail);
        seen.push(keep(proxy.openai(&chat(true)).send().await.unwrap()).await);
    }
    seen.push(
        keep(
            proxy
                .client
                .get(proxy.app.url("/llm/openai/v1/models"))
                .bearer_auth(&proxy.credential)
                .send()
                .await
                .unwrap(),
        )
        .await,
    );
    seen.push(
        keep(proxy.client.post(proxy.app.url(CHAT)).bearer_auth("rak_nope").json(&chat(false)).send().await.unwrap())
            .await,
    );
    for response in &seen {
        assert!(!response.is_empty());
        assert!(!contains(response, OPERATOR_KEY));
    }
}

#[tokio::test]
async fn each_user_has_a_model_call_rate_limit() {
    let proxy = Proxy::start_with(Duration::from_millis(1), &["--llm-rate-per-user", "2"]).await;
    for _ in 0..2 {
        let res = proxy.openai(&chat(false)).send().await.unwrap();
        assert_eq!(res.status(), 200);
    }
    let res = proxy.openai(&chat(false)).send().await.unwrap();
    assert!(res.headers().contains_key("retry-after"));
    assert_eq!(error_code(res).await, (429, "rate_limited".into()));
    assert_eq!(proxy.generation_requests().len(), 2, "the limited call never reached the provider");
    let (_, other) = agent(&proxy.app, "other-agent@example.com").await;
    let res = proxy
        .client
        .post(proxy.app.url("/llm/openai/v1/chat/completions"))
        .bearer_auth(other)
        .json(&chat(false))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200, "another user's agent is not limited");
}
