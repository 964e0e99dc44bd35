//! Values checked once at the edge and trusted inside.

use std::collections::BTreeSet;
use std::fmt;

/// A set of scope tokens (RFC 6749 §3.3), kept sorted so equal sets print alike.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Scope(BTreeSet<String>);

impl Scope {
    pub const MAX_LEN: usize = 1024;

    /// Parses a space-delimited scope string; `None` when a token has characters outside
    /// NQCHAR or the string is absurdly long.
    pub fn parse(text: &str) -> Option<Scope> {
        if text.len() > Self::MAX_LEN {
            return None;
        }
        let valid = |t: &str| {
            t.bytes().all(|b| b == 0x21 || (0x23..=0x5B).contains(&b) || (0x5D..=0x7E).contains(&b))
        };
        let mut set = BTreeSet::new();
        for token in text.split(' ').filter(|t| !t.is_empty()) {
            if !valid(token) {
                return None;
            }
            set.insert(token.to_owned());
        }
        Some(Scope(set))
    }

    pub fn from_words<I: IntoIterator<Item = String>>(words: I) -> Scope {
        Scope(words.into_iter().collect())
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn contains(&self, token: &str) -> bool {
        self.0.contains(token)
    }

    pub fn is_subset(&self, other: &Scope) -> bool {
        self.0.is_subset(&other.0)
    }

    pub fn iter(&self) -> impl Iterator<Item = &str> {
        self.0.iter().map(String::as_str)
    }

    /// This scope minus the given tokens.
    pub fn without(&self, drop: &[String]) -> Scope {
        Scope(self.0.iter().filter(|t| !drop.contains(t)).cloned().collect())
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut first = true;
        for token in &self.0 {
            if !first {
                f.write_str(" ")?;
            }
            f.write_str(token)?;
            first = false;
        }
        Ok(())
    }
}

/// A client identifier: URL-safe characters only, so Basic credentials need no escaping.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ClientId(String);

impl ClientId {
    pub fn parse(text: &str) -> Option<ClientId> {
        let ok = (1..=128).contains(&text.len())
            && text.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~'));
        ok.then(|| ClientId(text.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ClientId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The grant types latchkey implements.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum GrantType {
    Password,
    RefreshToken,
    ClientCredentials,
    MfaOtp,
}

impl GrantType {
    pub const ALL: [GrantType; 4] =
        [GrantType::Password, GrantType::RefreshToken, GrantType::ClientCredentials, GrantType::MfaOtp];

    pub fn as_str(self) -> &'static str {
        match self {
            GrantType::Password => "password",
            GrantType::RefreshToken => "refresh_token",
            GrantType::ClientCredentials => "client_credentials",
            GrantType::MfaOtp => "urn:latchkey:params:oauth:grant-type:mfa-otp",
        }
    }

    pub fn parse(text: &str) -> Option<GrantType> {
        GrantType::ALL.into_iter().find(|g| g.as_str() == text)
    }
}

impl fmt::Display for GrantType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scope_parsing_is_strict_and_canonical() {
        let s = Scope::parse("openid  profile openid").unwrap();
        assert_eq!(s.to_string(), "openid profile");
        assert!(Scope::parse("bad\"quote").is_none());
        assert!(Scope::parse("back\\slash").is_none());
        assert!(Scope::parse("tab\there").is_none());
        assert!(Scope::parse(&"a".repeat(2000)).is_none());
        assert!(Scope::parse("").unwrap().is_empty());
    }

    #[test]
    fn client_ids_are_url_safe() {
        assert!(ClientId::parse("web-app_1.x~").is_some());
        assert!(ClientId::parse("has space").is_none());
        assert!(ClientId::parse("a:b").is_none());
        assert!(ClientId::parse("").is_none());
    }
}
