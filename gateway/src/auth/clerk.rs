//! Clerk session tokens (RS256 JWTs), checked without Clerk's SDK: pinned algorithm, exact
//! issuer, required `azp` from an allow-list, 5 s skew, and a `sid` that was not revoked.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use anyhow::Context;
use jsonwebtoken::jwk::{AlgorithmParameters, JwkSet};
use jsonwebtoken::{Algorithm, DecodingKey, Validation, decode, decode_header};
use serde::Deserialize;
use tokio::sync::RwLock;

use super::extract::{AuthUser, AuthVia};
use crate::app::App;
use crate::config::SignupPolicy;
use crate::db::{users, webhooks};
use crate::error::AppError;

const SKEW_SECS: u64 = 5;
const JWKS_TTL: Duration = Duration::from_secs(300);
/// An unknown `kid` triggers a refetch, but no more often than this.
const JWKS_MISS_REFETCH: Duration = Duration::from_secs(60);
/// After a failed fetch, requests use what is cached (or fail at once) for this long.
const JWKS_FAILURE_BACKOFF: Duration = Duration::from_secs(10);
const JWKS_FETCH_TIMEOUT: Duration = Duration::from_secs(5);

pub struct ClerkVerifier {
    validation: Validation,
    authorized_parties: Vec<String>,
    keys: KeySource,
}

enum KeySource {
    Pem(Box<DecodingKey>),
    Jwks {
        url: String,
        http: reqwest::Client,
        cache: RwLock<JwksCache>,
        /// One fetch at a time; the cache itself is never locked across the network.
        fetching: tokio::sync::Mutex<()>,
    },
}

#[derive(Default)]
struct JwksCache {
    keys: HashMap<String, DecodingKey>,
    fetched_at: Option<Instant>,
    failed_at: Option<Instant>,
}

enum Cached {
    Use(DecodingKey),
    Refetch,
    Reject(AppError),
}

impl JwksCache {
    fn lookup(&self, kid: &str) -> Cached {
        let fresh = self.fetched_at.is_some_and(|t| t.elapsed() < JWKS_TTL);
        let failed_lately = self.failed_at.is_some_and(|t| t.elapsed() < JWKS_FAILURE_BACKOFF);
        let may_refetch_miss = self.fetched_at.is_none_or(|t| t.elapsed() >= JWKS_MISS_REFETCH);
        match self.keys.get(kid) {
            Some(key) if fresh || failed_lately => Cached::Use(key.clone()),
            Some(_) => Cached::Refetch,
            None if failed_lately => Cached::Reject(keys_unavailable()),
            None if may_refetch_miss => Cached::Refetch,
            None => Cached::Reject(reject("unknown kid", kid)),
        }
    }
}

#[derive(Debug, Deserialize)]
struct Claims {
    sub: String,
    sid: Option<String>,
    azp: Option<String>,
}

/// What a verifier needs, parsed at start: the exact issuer, where keys come from, accepted `azp`s.
pub struct ClerkConfig {
    issuer: String,
    keys: ConfiguredKeys,
    authorized_parties: Vec<String>,
}

enum ConfiguredKeys {
    Pem(Box<DecodingKey>),
    Jwks { url: String },
}

impl ClerkConfig {
    /// `pem` is PEM text or a path to a PEM file; without it keys come from `jwks_url`.
    pub fn parse(
        issuer: &str,
        pem: Option<&str>,
        jwks_url: Option<&str>,
        authorized_parties: Vec<String>,
    ) -> anyhow::Result<Self> {
        let issuer = issuer.trim_end_matches('/').to_string();
        let keys = match pem {
            Some(pem) => {
                let text = if pem.contains("-----BEGIN") {
                    pem.to_string()
                } else {
                    std::fs::read_to_string(pem).with_context(|| format!("reading Clerk PEM key from {pem}"))?
                };
                ConfiguredKeys::Pem(Box::new(
                    DecodingKey::from_rsa_pem(text.as_bytes())
                        .context("the Clerk JWT key is not an RSA public key in PEM")?,
                ))
            }
            None => ConfiguredKeys::Jwks {
                url: jwks_url.map(str::to_string).unwrap_or_else(|| format!("{issuer}/.well-known/jwks.json")),
            },
        };
        anyhow::ensure!(!authorized_parties.is_empty(), "Clerk needs at least one authorized party (azp)");
        Ok(Self { issuer, keys, authorized_parties })
    }
}

impl ClerkVerifier {
    pub fn new(config: ClerkConfig, http: reqwest::Client) -> Self {
        let mut validation = Validation::new(Algorithm::RS256);
        validation.leeway = SKEW_SECS;
        validation.validate_nbf = true;
        validation.set_issuer(&[&config.issuer]);
        validation.set_required_spec_claims(&["exp", "iss", "sub"]);
        let keys = match config.keys {
            ConfiguredKeys::Pem(key) => KeySource::Pem(key),
            ConfiguredKeys::Jwks { url } => KeySource::Jwks {
                url,
                http,
                cache: RwLock::new(JwksCache::default()),
                fetching: tokio::sync::Mutex::new(()),
            },
        };
        Self { validation, authorized_parties: config.authorized_parties, keys }
    }

    /// `invite`: a code the request brought, for a user new to Roost when sign-ups need one.
    pub async fn authenticate(&self, app: &App, token: &str, invite: Option<&str>) -> Result<AuthUser, AppError> {
        let (clerk_user_id, session_id) = self.verify(token).await?;
        let conn = app.db.conn()?;
        if webhooks::is_clerk_session_revoked(&conn, &session_id).await? {
            tracing::debug!("rejected: Clerk session was revoked");
            return Err(invalid());
        }
        let invite_hash = invite.map(super::invite::hash);
        let admission = match app.site.signups {
            SignupPolicy::Open => users::Admission::Open,
            SignupPolicy::Invite => users::Admission::Invite(invite_hash.as_deref()),
            SignupPolicy::Closed => users::Admission::Closed,
        };
        let user = match users::find_or_create_clerk(&conn, &clerk_user_id, app.accounts, admission).await? {
            users::ClerkUser::Found(user) => user,
            users::ClerkUser::Suspended => return Err(super::extract::suspended()),
            users::ClerkUser::Refused(refusal) => {
                tracing::info!(?refusal, "a new Clerk user was not let in by the sign-up policy");
                return Err(super::signup_refusal(refusal));
            }
            users::ClerkUser::Deleted => {
                tracing::debug!("rejected: Clerk user was deleted");
                return Err(invalid());
            }
            users::ClerkUser::AccountLimit => return Err(AppError::account_limit()),
        };
        Ok(AuthUser { user_id: user.id, via: AuthVia::Clerk { session_id } })
    }

    /// Returns `(sub, sid)` of a valid session token.
    pub async fn verify(&self, token: &str) -> Result<(String, String), AppError> {
        let header = decode_header(token).map_err(|e| reject("malformed token", e))?;
        if header.alg != Algorithm::RS256 {
            return Err(reject("algorithm is not RS256", header.alg));
        }
        if header.typ.as_deref().is_some_and(|t| t != "JWT") {
            return Err(reject("not a session token", header.typ));
        }
        let key = self.key_for(header.kid.as_deref()).await?;
        let data = decode::<Claims>(token, &key, &self.validation).map_err(|e| reject("signature or claims", e))?;
        let claims = data.claims;
        let azp = claims.azp.ok_or_else(|| reject("azp missing", ""))?;
        if !self.authorized_parties.contains(&azp) {
            return Err(reject("azp not allowed", azp));
        }
        if !claims.sub.starts_with("user_") {
            return Err(reject("sub is not a user", claims.sub));
        }
        let sid = claims.sid.filter(|s| s.starts_with("sess_")).ok_or_else(|| reject("sid missing", ""))?;
        Ok((claims.sub, sid))
    }

    async fn key_for(&self, kid: Option<&str>) -> Result<DecodingKey, AppError> {
        let (url, http, cache, fetching) = match &self.keys {
            KeySource::Pem(key) => return Ok((**key).clone()),
            KeySource::Jwks { url, http, cache, fetching } => (url, http, cache, fetching),
        };
        let kid = kid.ok_or_else(|| reject("kid missing", ""))?;
        let seen = {
            let cached = cache.read().await;
            match cached.lookup(kid) {
                Cached::Use(key) => return Ok(key),
                Cached::Reject(e) => return Err(e),
                Cached::Refetch => (cached.fetched_at, cached.failed_at),
            }
        };
        let _one_fetch = fetching.lock().await;
        {
            // Another request fetched (or failed to) while this one waited: use its outcome.
            let cached = cache.read().await;
            if (cached.fetched_at, cached.failed_at) != seen {
                match cached.lookup(kid) {
                    Cached::Use(key) => return Ok(key),
                    Cached::Reject(e) => return Err(e),
                    Cached::Refetch => {}
                }
            }
        }
        match fetch_keys(http, url).await {
            Ok(keys) => {
                let mut cached = cache.write().await;
                cached.keys = keys;
                cached.fetched_at = Some(Instant::now());
                cached.failed_at = None;
                cached.keys.get(kid).cloned().ok_or_else(|| reject("unknown kid", kid))
            }
            Err(e) => {
                tracing::warn!(error = %e, "fetching Clerk's signing keys failed; using the cached ones");
                let mut cached = cache.write().await;
                cached.failed_at = Some(Instant::now());
                cached.keys.get(kid).cloned().ok_or_else(keys_unavailable)
            }
        }
    }
}

async fn fetch_keys(http: &reqwest::Client, url: &str) -> anyhow::Result<HashMap<String, DecodingKey>> {
    let set: JwkSet = http.get(url).timeout(JWKS_FETCH_TIMEOUT).send().await?.error_for_status()?.json().await?;
    Ok(set
        .keys
        .iter()
        .filter(|jwk| matches!(jwk.algorithm, AlgorithmParameters::RSA(_)))
        .filter_map(|jwk| Some((jwk.common.key_id.clone()?, DecodingKey::from_jwk(jwk).ok()?)))
        .collect())
}

fn keys_unavailable() -> AppError {
    AppError::unavailable(
        "auth_keys_unavailable",
        "Signing in is unavailable for a moment: the server cannot check session tokens right now. Try again shortly.",
        5,
    )
}

fn invalid() -> AppError {
    AppError::new(
        axum::http::StatusCode::UNAUTHORIZED,
        "invalid_token",
        "Your sign-in has expired or is not valid. Sign in again.",
    )
}

fn reject(why: &str, detail: impl std::fmt::Debug) -> AppError {
    tracing::debug!(why, ?detail, "rejected Clerk token");
    invalid()
}
