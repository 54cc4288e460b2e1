//! The redacting Matrix access token: a leaf, so the homeserver port (which sends it) and the AWS vault (which
//! seals it) share the type without knowing each other.

use std::fmt;

/// A Matrix access token. Its `Debug` is redacted and it has no `Display`, so it cannot end up in a log line or an
/// error message by accident; [`AccessToken::expose`] is the one, greppable way to read it.
#[derive(Clone, PartialEq, Eq)]
pub struct AccessToken(String);

impl AccessToken {
    pub fn new(token: impl Into<String>) -> Self {
        AccessToken(token.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for AccessToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("AccessToken(<redacted>)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_the_token() {
        let token = AccessToken::new("syt_secret_value");
        assert!(!format!("{token:?}").contains("secret"));
        assert!(!format!("{:?}", Some(&token)).contains("secret"));
    }
}
