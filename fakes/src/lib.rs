//! Stateful stand-ins for Roost's remote parts, speaking their real wire formats: an OpenClaw
//! gateway with failure injection and an OpenAI/Anthropic-compatible LLM. Used by the gateway's
//! tests and by the bench, never by the `roost` binary (the simulated agent behind
//! `--agent-provider fake` is the gateway's own, in `gateway::machines::simulated`).

pub mod llm;
pub mod openclaw;

use std::net::SocketAddr;

use tokio::task::JoinHandle;

/// Splits a reply into streamed chunks: each word with the whitespace before it, so the chunks
/// concatenate back to the exact text.
fn split_words(text: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let mut cur = String::new();
    let mut prev_ws = false;
    for c in text.chars() {
        if !c.is_whitespace() && prev_ws && !cur.is_empty() {
            out.push(std::mem::take(&mut cur));
        }
        prev_ws = c.is_whitespace();
        cur.push(c);
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

/// Serves a fake on `127.0.0.1:0`; the task ends when the handle is aborted.
async fn serve_on_loopback(app: axum::Router, what: &str) -> (SocketAddr, JoinHandle<()>) {
    let listener =
        tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap_or_else(|e| panic!("{what}: bind 127.0.0.1:0: {e}"));
    let addr = listener.local_addr().unwrap_or_else(|e| panic!("{what}: local_addr: {e}"));
    let server = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (addr, server)
}

#[cfg(test)]
mod tests {
    #[test]
    fn words_keep_whitespace() {
        assert_eq!(super::split_words("Hello  big world"), vec!["Hello  ", "big ", "world"]);
        assert_eq!(super::split_words(""), Vec::<String>::new());
        assert_eq!(super::split_words("a b").concat(), "a b");
    }
}
