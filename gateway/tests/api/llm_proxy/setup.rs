//! The provider and model an operator configures, and what happens without one.

use super::*;

#[tokio::test]
async fn without_a_configured_provider_calls_get_no_model_configured() {
    let app = TestApp::spawn().await;
    assert_eq!(app.state.llm_api(), None);
    assert_eq!(app.state.llm_model(), None);
    let (_, credential) = agent(&app, "agent@example.com").await;
    let api = Client::new();
    for res in [
        api.post(app.url(CHAT)).bearer_auth(&credential).json(&chat(true)).send().await.unwrap(),
        api.post(app.url(MESSAGES)).header("x-api-key", &credential).json(&anthropic_chat(true)).send().await.unwrap(),
        api.get(app.url("/llm/openai/v1/models")).bearer_auth(&credential).send().await.unwrap(),
    ] {
        assert_eq!(res.status(), 400);
        let body: Value = res.json().await.unwrap();
        assert_eq!(body["error"]["code"], "no_model_configured");
        assert_eq!(
            body["error"]["message"],
            "No model is configured on this Roost server. Set ROOST_LLM_OPENAI_BASE_URL + \
             ROOST_LLM_OPENAI_API_KEY or ROOST_LLM_ANTHROPIC_API_KEY."
        );
    }
    assert!(usage_rows(&app).await.is_empty());
}

#[tokio::test]
async fn the_configured_provider_and_model_are_exposed_for_agent_setup() {
    let proxy = Proxy::start_with(Duration::ZERO, &["--llm-model", "gpt-4o-mini"]).await;
    assert_eq!(proxy.app.state.llm_api(), Some(LlmApi::OpenAi));
    assert_eq!(proxy.app.state.llm_model(), Some("gpt-4o-mini"));

    let app = TestApp::spawn_with(&["--llm-anthropic-api-key", OPERATOR_KEY]).await;
    assert_eq!(app.state.llm_api(), Some(LlmApi::Anthropic));
}

#[tokio::test]
async fn invalid_llm_flags_are_reported_at_start_without_echoing_keys() {
    use clap::Parser;
    let failure = |flags: &[&str]| {
        let mut argv = vec!["roost", "serve", "--listen", "127.0.0.1:0", "--data-dir", "/tmp/roost-never-used"];
        argv.extend_from_slice(flags);
        let gateway::config::Command::Serve(args) = gateway::config::Cli::try_parse_from(argv).unwrap().command else {
            unreachable!()
        };
        async move {
            match gateway::startup::Server::build(&args).await {
                Ok(_) => panic!("invalid flags must fail"),
                Err(e) => format!("{e:#}"),
            }
        }
    };
    let err = failure(&[
        "--llm-openai-base-url",
        "ftp://models.example",
        "--llm-openai-api-key",
        "sk-leak-check",
        "--llm-anthropic-base-url",
        "not a url",
        "--llm-model",
        " ",
        "--llm-upstream-timeout-secs",
        "0",
    ])
    .await;
    for needle in ["--llm-openai-base-url", "--llm-anthropic-base-url", "--llm-model", "--llm-upstream-timeout-secs"] {
        assert!(err.contains(needle), "{needle} missing from: {err}");
    }
    let err = failure(&["--llm-openai-api-key", "sk-leak-check"]).await;
    assert!(err.contains("--llm-openai-base-url"), "{err}");
    let err = failure(&["--llm-openai-base-url", "https://api.openai.com/v1"]).await;
    assert!(err.contains("--llm-openai-api-key"), "{err}");
    let err = failure(&["--llm-anthropic-api-key", "sk-bad\nkey"]).await;
    assert!(err.contains("--llm-anthropic-api-key"), "{err}");
    assert!(!err.contains("sk-bad"), "the key is never echoed: {err}");
}
