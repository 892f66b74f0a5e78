//! The HTTP core: base URL, auth header, a timeout on every call, and the retry loop. The
//! endpoint methods live in `apps.rs`, `volumes.rs` and `machines.rs`.

use std::fmt;
use std::time::{Duration, Instant};

use reqwest::header::{AUTHORIZATION, HeaderValue, RETRY_AFTER};
use reqwest::{Method, Response, StatusCode};
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::error::{ApiError, FlyError, TransportKind};
use super::retry::{self, Decision, Idempotency, RetryPolicy};
use super::token::{ApiToken, InvalidToken};

/// The public endpoint. From inside Fly, `http://_api.internal:4280` also works (research §1).
pub const DEFAULT_BASE_URL: &str = "https://api.machines.dev";

/// Every call has a deadline; none waits on the network for ever.
#[derive(Debug, Clone, Copy)]
pub struct Timeouts {
    pub connect: Duration,
    /// Reads, deletes, start/stop/suspend, secrets.
    pub call: Duration,
    /// Creates, which place and launch on the server (and time out there with a 408).
    pub create: Duration,
    /// A `/wait` call blocks up to its `timeout` (≤ 60 s); this much more is allowed for the answer.
    pub wait_slack: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Self {
            connect: Duration::from_secs(10),
            call: Duration::from_secs(30),
            create: Duration::from_secs(90),
            wait_slack: Duration::from_secs(10),
        }
    }
}

#[derive(Debug, Clone)]
pub struct FlyConfig {
    /// [`DEFAULT_BASE_URL`], or a fake's URL in tests (fly-go's `FLY_FLAPS_BASE_URL`).
    pub base_url: String,
    pub token: ApiToken,
    pub timeouts: Timeouts,
    pub retry: RetryPolicy,
}

impl FlyConfig {
    pub fn new(token: ApiToken) -> Self {
        Self {
            base_url: DEFAULT_BASE_URL.to_string(),
            token,
            timeouts: Timeouts::default(),
            retry: RetryPolicy::standard(),
        }
    }
}

/// A Machines API client. Cheap to clone (one connection pool).
#[derive(Clone)]
pub struct FlyClient {
    http: reqwest::Client,
    base: String,
    auth: HeaderValue,
    token: ApiToken,
    pub(super) timeouts: Timeouts,
    pub(super) retry: RetryPolicy,
}

impl fmt::Debug for FlyClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FlyClient")
            .field("base", &self.base)
            .field("timeouts", &self.timeouts)
            .field("retry", &self.retry)
            .finish_non_exhaustive()
    }
}

/// One request, kept so that a retry can send it again.
pub(super) struct Call {
    pub method: Method,
    pub path: String,
    pub query: Vec<(String, String)>,
    pub body: Option<Vec<u8>>,
    pub idempotency: Idempotency,
    pub timeout: Duration,
}

impl Call {
    pub fn new(method: Method, path: String, idempotency: Idempotency, timeout: Duration) -> Self {
        Self { method, path, query: Vec::new(), body: None, idempotency, timeout }
    }

    pub fn json(mut self, body: &impl Serialize) -> Self {
        // Serialising our own types cannot fail (string keys, no non-finite floats).
        self.body = Some(serde_json::to_vec(body).unwrap_or_default());
        self
    }

    pub fn query(mut self, key: &str, value: impl Into<String>) -> Self {
        self.query.push((key.to_string(), value.into()));
        self
    }

    fn name(&self) -> String {
        format!("{} {}", self.method, self.path)
    }
}

impl FlyClient {
    pub fn new(config: FlyConfig) -> Result<Self, InvalidToken> {
        let auth = config.token.header()?;
        let http = reqwest::Client::builder()
            .connect_timeout(config.timeouts.connect)
            .cookie_store(true)
            .user_agent(concat!("roost-provisioner/", env!("CARGO_PKG_VERSION")))
            .build()
            // Only a broken TLS backend fails here; there is no client without one.
            .expect("the HTTP client builds");
        let base = config.base_url.trim_end_matches('/').to_string();
        Ok(Self { http, base, auth, token: config.token, timeouts: config.timeouts, retry: config.retry })
    }

    /// Sends once and turns any non-2xx answer into a typed error.
    pub(super) async fn send_once(&self, call: &Call) -> Result<Response, FlyError> {
        let mut url = format!("{}{}", self.base, call.path);
        for (i, (key, value)) in call.query.iter().enumerate() {
            url.push_str(if i == 0 { "?" } else { "&" });
            url.push_str(&format!("{}={}", seg(key), seg(value)));
        }
        let mut request =
            self.http.request(call.method.clone(), url).header(AUTHORIZATION, self.auth.clone()).timeout(call.timeout);
        if let Some(body) = &call.body {
            request = request.header(reqwest::header::CONTENT_TYPE, "application/json").body(body.clone());
        }
        let response = request.send().await.map_err(|e| self.transport(call, &e))?;
        if response.status().is_success() {
            return Ok(response);
        }
        Err(self.api_error(call, response).await)
    }

    /// Sends with the standard retry classification.
    pub(super) async fn send(&self, call: &Call) -> Result<Response, FlyError> {
        self.send_classified(call, retry::classify).await
    }

    /// Sends, retrying what `classify` allows within the policy's attempt and time bounds.
    pub(super) async fn send_classified(
        &self,
        call: &Call,
        classify: fn(&FlyError, Idempotency) -> Decision,
    ) -> Result<Response, FlyError> {
        let started = Instant::now();
        let mut slept = Duration::ZERO;
        let mut attempt = 1;
        loop {
            let error = match self.send_once(call).await {
                Ok(response) => return Ok(response),
                Err(error) => error,
            };
            let Decision::Retry { at_least } = classify(&error, call.idempotency) else { return Err(error) };
            let delay = self.retry.delay(attempt - 1, at_least);
            // Real time spent, or what the sleeper was asked for if it did not really sleep.
            let spent = started.elapsed().max(slept);
            if attempt >= self.retry.max_attempts || spent + delay > self.retry.max_total {
                return Err(error);
            }
            tracing::debug!(call = %call.name(), attempt, ?delay, error = %error, "retrying a Fly call");
            (self.retry.sleep)(delay).await;
            slept += delay;
            attempt += 1;
        }
    }

    pub(super) async fn json<T: DeserializeOwned>(&self, call: &Call) -> Result<T, FlyError> {
        let response = self.send(call).await?;
        decode(call, response).await
    }

    fn transport(&self, call: &Call, e: &reqwest::Error) -> FlyError {
        let kind = if e.is_connect() {
            TransportKind::Connect
        } else if e.is_timeout() {
            TransportKind::Timeout
        } else {
            TransportKind::Other
        };
        let mut message = e.to_string();
        let mut source = std::error::Error::source(e);
        while let Some(s) = source {
            message = format!("{message}: {s}");
            source = s.source();
        }
        FlyError::Transport { call: call.name(), kind, message: self.scrub(message) }
    }

    async fn api_error(&self, call: &Call, response: Response) -> FlyError {
        let status = response.status();
        let headers = response.headers().clone();
        let body = response.bytes().await.unwrap_or_default();
        let parsed: Option<serde_json::Value> = serde_json::from_slice(&body).ok();
        let field = |name: &str| parsed.as_ref().and_then(|v| v.get(name)).and_then(|v| v.as_str()).map(str::to_string);
        let message = field("error").or_else(|| field("message")).unwrap_or_else(|| {
            let text = String::from_utf8_lossy(&body);
            let text: String = text.chars().take(300).collect();
            if text.is_empty() { status.canonical_reason().unwrap_or("").to_string() } else { text }
        });
        let error = ApiError {
            call: call.name(),
            http_status: status.as_u16(),
            message: self.scrub(message),
            code: field("status").map(|c| self.scrub(c)),
            request_id: headers.get("fly-request-id").and_then(|v| v.to_str().ok()).map(str::to_string),
        };
        let retry_after = (status == StatusCode::TOO_MANY_REQUESTS)
            .then(|| headers.get(RETRY_AFTER).and_then(|v| v.to_str().ok()).and_then(parse_retry_after))
            .flatten();
        FlyError::from_status(error, retry_after)
    }

    /// A server that echoes the token (in an auth error, say) must not put it into our logs.
    fn scrub(&self, text: String) -> String {
        let secret = self.token.secret();
        if secret.len() >= 4 && text.contains(secret) { text.replace(secret, "<redacted>") } else { text }
    }
}

pub(super) async fn decode<T: DeserializeOwned>(call: &Call, response: Response) -> Result<T, FlyError> {
    let body = response.bytes().await.map_err(|e| FlyError::Transport {
        call: call.name(),
        kind: TransportKind::Other,
        message: e.to_string(),
    })?;
    serde_json::from_slice(&body).map_err(|e| FlyError::Decode { call: call.name(), message: e.to_string() })
}

/// `Retry-After` as delta-seconds or an HTTP date (RFC 9110 §10.2.3). Whether Fly sends one at
/// all is unverified (research §11), so a missing or odd value just means "use the backoff".
pub fn parse_retry_after(value: &str) -> Option<Duration> {
    let value = value.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = httpdate::parse_http_date(value).ok()?;
    Some(at.duration_since(std::time::SystemTime::now()).unwrap_or_default())
}

/// Percent-encodes one path segment or query part (app names and ids are plain, but a bad id
/// must not change the path).
pub(super) fn seg(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    #[test]
    fn retry_after_takes_seconds_and_dates() {
        assert_eq!(super::parse_retry_after(" 3 "), Some(Duration::from_secs(3)));
        assert_eq!(super::parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT"), Some(Duration::ZERO));
        assert_eq!(super::parse_retry_after("soon"), None);
        assert_eq!(super::seg("a b/c"), "a%20b%2Fc");
    }
}
