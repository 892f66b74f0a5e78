//! Per-user secrets derived from the server secret, so none of them is stored anywhere:
//! - the OpenClaw gateway token Roost uses to reach a user's agent (never leaves the server);
//! - the LLM credential the agent uses to call Roost's `/llm/*` proxy (lives on the agent);
//! - the secret a Fly agent's sidecar (`roost-agent`) admits Roost's connections by.

use crate::crypto::{b64url, hmac_sha256, hmac_sha256_verify};
use crate::domain::UserId;
use crate::secret::ServerSecret;

const LLM_PREFIX: &str = "rak_";

/// The internal token for the user's OpenClaw gateway (`gateway.auth.token`).
pub fn gateway_token(secret: &ServerSecret, user: &UserId) -> String {
    b64url(&hmac_sha256(secret.expose(), format!("openclaw-gateway:{user}").as_bytes()))
}

/// The per-machine secret Roost sends in `x-roost-agent-secret` to the user's Fly sidecar (a Fly
/// app secret there). Domain-separated from the gateway token: knowing one gives nothing of the
/// other, and another user's agent on the private network cannot derive it.
pub fn agent_secret(secret: &ServerSecret, user: &UserId) -> String {
    b64url(&hmac_sha256(secret.expose(), format!("roost-agent-secret:{user}").as_bytes()))
}

/// The credential the user's agent presents to `/llm/*`: `rak_<user id>.<tag>`.
pub fn llm_credential(secret: &ServerSecret, user: &UserId) -> String {
    format!("{LLM_PREFIX}{user}.{}", b64url(&llm_tag(secret, user)))
}

/// The user an LLM credential belongs to, if it is genuine (constant-time check).
pub fn verify_llm_credential(secret: &ServerSecret, credential: &str) -> Option<UserId> {
    let (user, tag) = credential.strip_prefix(LLM_PREFIX)?.split_once('.')?;
    let user = UserId::parse(user).ok()?;
    let tag = base64::Engine::decode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, tag).ok()?;
    hmac_sha256_verify(secret.expose(), format!("roost-llm:{user}").as_bytes(), &tag).then_some(user)
}

fn llm_tag(secret: &ServerSecret, user: &UserId) -> Vec<u8> {
    hmac_sha256(secret.expose(), format!("roost-llm:{user}").as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn llm_credentials_verify_only_for_their_user_and_secret() {
        let secret = ServerSecret::from_bytes([7; 32]);
        let other_secret = ServerSecret::from_bytes([8; 32]);
        let alice = UserId::generate();
        let bob = UserId::generate();
        let cred = llm_credential(&secret, &alice);
        assert_eq!(verify_llm_credential(&secret, &cred), Some(alice.clone()));
        assert_eq!(verify_llm_credential(&other_secret, &cred), None);
        let swapped = cred.replace(alice.as_str(), bob.as_str());
        assert_eq!(verify_llm_credential(&secret, &swapped), None, "a tag is bound to its user");
        assert_eq!(verify_llm_credential(&secret, "rak_garbage"), None);
        assert_ne!(gateway_token(&secret, &alice), gateway_token(&secret, &bob));
    }

    #[test]
    fn agent_secrets_are_per_user_per_server_and_apart_from_the_gateway_token() {
        let secret = ServerSecret::from_bytes([7; 32]);
        let alice = UserId::generate();
        let bob = UserId::generate();
        let a = agent_secret(&secret, &alice);
        assert_eq!(a, agent_secret(&secret, &alice), "derived, so every instance agrees");
        assert!(a.len() >= 32, "the sidecar refuses shorter secrets");
        assert_ne!(a, agent_secret(&secret, &bob));
        assert_ne!(a, agent_secret(&ServerSecret::from_bytes([8; 32]), &alice));
        assert_ne!(a, gateway_token(&secret, &alice));
        assert!(!llm_credential(&secret, &alice).contains(&a));
    }
}
