//! A secret string from the command line or environment that cannot end up in a log line.

use std::fmt;
use std::str::FromStr;

#[derive(Clone)]
pub struct SecretString(String);

impl SecretString {
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl FromStr for SecretString {
    type Err = std::convert::Infallible;

    fn from_str(raw: &str) -> Result<Self, Self::Err> {
        Ok(Self(raw.to_owned()))
    }
}

impl fmt::Debug for SecretString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretString(<redacted>)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_the_secret() {
        let secret: SecretString = "sk-very-secret".parse().unwrap();
        assert_eq!(secret.expose(), "sk-very-secret");
        assert!(!format!("{secret:?}").contains("sk-very"));
        assert!(!format!("{:?}", Some(secret)).contains("sk-very"));
    }
}
