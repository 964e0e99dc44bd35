//! Users and the account values checked once at the edge and trusted inside.

use std::collections::HashSet;
use std::fmt;
use std::sync::LazyLock;

#[derive(Debug, Clone)]
pub struct User {
    /// The `sub` of every token issued for this user.
    pub id: String,
    pub username: Username,
    pub email: Email,
    pub email_verified: bool,
    pub status: UserStatus,
    pub roles: Vec<String>,
    pub locked_until: Option<i64>,
    pub last_login_at: Option<i64>,
    pub created_at: i64,
    pub updated_at: i64,
    /// Moves on with every password reset or change; a session is only opened for the
    /// stamp its login saw (a login that raced a reset gets nothing).
    pub security_stamp: i64,
}

/// The 10,000 most common passwords (source and licence at the top of the file), lower
/// case, parsed once on first use.
static COMMON_PASSWORDS: LazyLock<HashSet<String>> = LazyLock::new(|| {
    include_str!("common-passwords.txt")
        .lines()
        .filter(|line| !line.is_empty() && !line.starts_with('#'))
        .map(str::to_lowercase)
        .collect()
});

/// A username, normalised per RFC 8265 UsernameCaseMapped (full-width forms mapped to
/// their narrow ones, lower case, NFC), so "Ａｌｉｃｅ", "ALICE" and "alice" are one name and
/// uniqueness holds across every way of typing it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Username(String);

impl Username {
    pub fn parse(text: &str) -> Result<Username, String> {
        use precis_core::profile::PrecisFastInvocation;
        let name = precis_profiles::UsernameCaseMapped::enforce(text.trim())
            .map_err(|_| "username may contain only letters, digits, '.', '_', '-' and '@'".to_string())?
            .into_owned();
        if !(3..=64).contains(&name.chars().count()) {
            return Err("username must be 3 to 64 characters".into());
        }
        if !name.chars().all(|c| c.is_alphanumeric() || matches!(c, '.' | '_' | '-' | '@')) {
            return Err("username may contain only letters, digits, '.', '_', '-' and '@'".into());
        }
        Ok(Username(name))
    }

    /// For rows read back from the database, which were parsed on the way in.
    pub(crate) fn trusted(text: String) -> Username {
        Username(text)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Username {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// An email address, normalised to lower case.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Email(String);

impl Email {
    pub fn parse(text: &str) -> Result<Email, String> {
        let email = text.trim().to_lowercase();
        let err = || "email must be an address like name@example.com".to_string();
        if email.len() > 254 || email.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(err());
        }
        let (local, domain) = email.rsplit_once('@').ok_or_else(err)?;
        let domain_ok = domain.contains('.')
            && !domain.starts_with('.')
            && !domain.ends_with('.')
            && domain.split('.').all(|l| !l.is_empty());
        if local.is_empty() || local.len() > 64 || local.contains('@') || !domain_ok {
            return Err(err());
        }
        Ok(Email(email))
    }

    pub(crate) fn trusted(text: String) -> Email {
        Email(text)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Email {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A password as typed. Never printed: Debug is redacted and there is no Display.
#[derive(Clone)]
pub struct Password(String);

impl Password {
    /// Longer inputs are refused before hashing so nobody can make argon2 chew megabytes.
    pub const MAX_BYTES: usize = 1024;
    pub const MIN_CHARS: usize = 8;

    /// Any candidate for verification: only the hashing bound applies.
    pub fn candidate(text: String) -> Result<Password, String> {
        if text.is_empty() || text.len() > Self::MAX_BYTES {
            return Err(format!("password must be 1 to {} bytes", Self::MAX_BYTES));
        }
        Ok(Password(text))
    }

    /// A new password: the policy applies, and every broken rule is reported.
    pub fn new_checked(text: String, context: &[&str]) -> Result<Password, Vec<String>> {
        let mut reasons = Vec::new();
        let chars = text.chars().count();
        if chars < Self::MIN_CHARS {
            reasons.push(format!("password must be at least {} characters", Self::MIN_CHARS));
        }
        if text.len() > Self::MAX_BYTES {
            reasons.push(format!("password must be at most {} bytes", Self::MAX_BYTES));
        }
        let lower = text.to_lowercase();
        if COMMON_PASSWORDS.contains(&lower) {
            reasons.push("password is one of the most common passwords".into());
        }
        for word in context.iter().filter(|w| w.len() >= 3) {
            if lower.contains(&word.to_lowercase()) {
                reasons.push("password must not contain the username or email".into());
                break;
            }
        }
        if reasons.is_empty() { Ok(Password(text)) } else { Err(reasons) }
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Password(<redacted>)")
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UserStatus {
    Active,
    Disabled,
    Locked,
}

impl UserStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            UserStatus::Active => "active",
            UserStatus::Disabled => "disabled",
            UserStatus::Locked => "locked",
        }
    }

    pub fn parse(text: &str) -> Option<UserStatus> {
        match text {
            "active" => Some(UserStatus::Active),
            "disabled" => Some(UserStatus::Disabled),
            "locked" => Some(UserStatus::Locked),
            _ => None,
        }
    }
}

/// A role name: lower-case word.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Role(String);

impl Role {
    pub fn parse(text: &str) -> Result<Role, String> {
        let ok = (1..=64).contains(&text.len())
            && text.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'-' | b'_'));
        if ok { Ok(Role(text.to_owned())) } else { Err(format!("{text:?} is not a role name")) }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usernames_normalise() {
        assert_eq!(Username::parse("  Alice ").unwrap().as_str(), "alice");
        assert!(Username::parse("al").is_err());
        assert!(Username::parse("a b c").is_err());
        assert!(Username::parse("x'; DROP TABLE users;--").is_err());
    }

    #[test]
    fn usernames_compare_as_rfc8265_case_mapped() {
        // Full-width letters, upper case and a decomposed accent all name the same user.
        assert_eq!(Username::parse("\u{FF21}\u{FF4C}\u{FF49}\u{FF43}\u{FF45}").unwrap().as_str(), "alice");
        assert_eq!(Username::parse("Jose\u{301}").unwrap(), Username::parse("JOS\u{C9}").unwrap());
        assert_eq!(Username::parse("Jose\u{301}").unwrap().as_str(), "jos\u{e9}");
        // Not identifier characters under RFC 8264's IdentifierClass.
        assert!(Username::parse("ali\u{200B}ce").is_err());
        assert!(Username::parse("\u{2163}bob").is_err());
    }

    #[test]
    fn emails_validate() {
        assert_eq!(Email::parse("Bob@Example.COM").unwrap().as_str(), "bob@example.com");
        for bad in ["bob", "bob@", "@x.io", "bob@localhost", "a b@x.io", "bob@x..io"] {
            assert!(Email::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn password_policy_lists_every_reason() {
        let reasons = Password::new_checked("alice".into(), &["alice"]).unwrap_err();
        assert_eq!(reasons.len(), 2);
        assert!(Password::new_checked("correct horse battery".into(), &["alice"]).is_ok());
        assert!(Password::candidate("x".repeat(2000)).is_err());
        assert_eq!(format!("{:?}", Password::candidate("s3cret".into()).unwrap()), "Password(<redacted>)");
    }

    #[test]
    fn common_passwords_are_refused_in_any_case() {
        assert_eq!(COMMON_PASSWORDS.len(), 10_000);
        for common in ["password", "PASSWORD", "Qwerty123", "iloveyou", "1q2w3e4r5t"] {
            let reasons = Password::new_checked(common.into(), &[]).unwrap_err();
            assert_eq!(reasons, vec!["password is one of the most common passwords".to_string()], "{common}");
        }
        // Short and common and containing the username: all three reasons at once.
        assert_eq!(Password::new_checked("monkey".into(), &["monk"]).unwrap_err().len(), 3);
    }
}
