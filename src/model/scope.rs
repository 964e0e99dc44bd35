//! Scope (RFC 6749 §3.3): parsed once at the edge, a sorted set inside.

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

/// In a JWT or a JSON body a scope is one space-separated string (RFC 9068 §2.2.3).
impl serde::Serialize for Scope {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for Scope {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Scope, D::Error> {
        let text = String::deserialize(deserializer)?;
        Scope::parse(&text).ok_or_else(|| serde::de::Error::custom("not a scope"))
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
}
