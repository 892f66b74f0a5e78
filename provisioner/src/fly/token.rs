//! The org-scoped API token (an app-scoped deploy token cannot create apps, research §1). It is
//! only ever turned into the `Authorization` header, marked sensitive; `Debug` never shows it.

use std::fmt;

use reqwest::header::HeaderValue;

#[derive(Clone)]
pub struct ApiToken(String);

impl ApiToken {
    pub fn new(token: impl Into<String>) -> Self {
        Self(token.into().trim().to_string())
    }

    /// The header value, following research §1: the string `fly tokens create` prints
    /// (`FlyV1 fm2_…`) is sent as it is; a bare macaroon (`fm1r_`, `fm1a_`, `fm2_`) gets the
    /// `FlyV1` scheme, anything else `Bearer` (fly-go's `tokens.Parse`).
    pub(super) fn header(&self) -> Result<HeaderValue, InvalidToken> {
        let t = self.0.as_str();
        let has_scheme = |scheme: &str| t.len() > scheme.len() && t[..scheme.len()].eq_ignore_ascii_case(scheme);
        let value = if has_scheme("FlyV1 ") || has_scheme("Bearer ") {
            t.to_string()
        } else if ["fm1r_", "fm1a_", "fm2_"].iter().any(|p| t.starts_with(p)) {
            format!("FlyV1 {t}")
        } else {
            format!("Bearer {t}")
        };
        let mut value = HeaderValue::from_str(&value).map_err(|_| InvalidToken)?;
        value.set_sensitive(true);
        Ok(value)
    }

    /// The secret part, for scrubbing it out of anything the server echoes back.
    pub(super) fn secret(&self) -> &str {
        let t = self.0.as_str();
        match t.split_once(' ') {
            Some((scheme, rest)) if scheme.eq_ignore_ascii_case("flyv1") || scheme.eq_ignore_ascii_case("bearer") => {
                rest.trim()
            }
            _ => t,
        }
    }
}

impl fmt::Debug for ApiToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ApiToken(<redacted>)")
    }
}

/// The token holds characters a header cannot carry. Says nothing about the token itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the Fly API token is not a valid header value")]
pub struct InvalidToken;

#[cfg(test)]
mod tests {
    use super::ApiToken;

    fn header(t: &str) -> String {
        ApiToken::new(t).header().unwrap().to_str().unwrap().to_string()
    }

    #[test]
    fn schemes_follow_the_token_kind() {
        assert_eq!(header("FlyV1 fm2_abc,fm2_def"), "FlyV1 fm2_abc,fm2_def");
        assert_eq!(header("fm2_abc"), "FlyV1 fm2_abc");
        assert_eq!(header("fm1r_abc"), "FlyV1 fm1r_abc");
        assert_eq!(header("plain"), "Bearer plain");
        assert_eq!(header("bearer plain"), "bearer plain");
        assert!(ApiToken::new("x").header().unwrap().is_sensitive());
        assert_eq!(ApiToken::new("FlyV1 fm2_abc").secret(), "fm2_abc");
        assert_eq!(ApiToken::new("fm2_abc").secret(), "fm2_abc");
    }

    #[test]
    fn debug_hides_it() {
        assert_eq!(format!("{:?}", ApiToken::new("fm2_secret")), "ApiToken(<redacted>)");
    }
}
