//! Registered clients and the identifiers and grant types they are registered with.

use std::fmt;

use super::scope::Scope;

#[derive(Debug, Clone)]
pub struct Client {
    pub id: ClientId,
    pub name: String,
    /// SHA-256 hex of the secret; `None` for a public client.
    pub secret_hash: Option<String>,
    pub grants: Vec<GrantType>,
    pub scopes: Scope,
    pub audiences: Vec<String>,
    pub require_mfa: bool,
    /// Where the browser may be sent back with a code (authorization_code clients).
    pub redirect_uris: Vec<String>,
    /// Where the browser may be sent after RP-initiated logout.
    pub post_logout_redirect_uris: Vec<String>,
    /// Trusted by the operator: its users are not asked for consent.
    pub first_party: bool,
    pub created_at: i64,
}

impl Client {
    pub fn is_public(&self) -> bool {
        self.secret_hash.is_none()
    }

    /// A client allowed the password grant may also finish it with the MFA grant.
    pub fn allows(&self, grant: GrantType) -> bool {
        self.grants.contains(&grant)
            || (grant == GrantType::MfaOtp && self.grants.contains(&GrantType::Password))
    }

    /// Whether `requested` is one of the registered redirect URIs: exactly, except that a
    /// registered loopback URI matches on any port (RFC 8252 §7.3).
    pub fn redirect_uri_registered(&self, requested: &str) -> bool {
        self.redirect_uris.iter().any(|registered| redirect_uri_matches(registered, requested))
    }

    /// The APIs this client's tokens are for: its registered audiences, or its own id.
    pub fn token_audiences(&self) -> Vec<String> {
        if self.audiences.is_empty() { vec![self.id.to_string()] } else { self.audiences.clone() }
    }
}

/// `requested` equals `registered`, or both are the same loopback URI but for the port.
pub fn redirect_uri_matches(registered: &str, requested: &str) -> bool {
    if registered == requested {
        return true;
    }
    let without_port = |text: &str| {
        let mut url = url::Url::parse(text).ok()?;
        let loopback = url.scheme() == "http"
            && match url.host() {
                Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
                Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
                _ => false,
            };
        (loopback && url.set_port(None).is_ok()).then(|| url.to_string())
    };
    matches!((without_port(registered), without_port(requested)), (Some(a), Some(b)) if a == b)
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

    /// Shaped like a user's id (a hyphenated UUID): a client-credentials token's `sub` is
    /// the client id, so such a client could pass for that user at a resource server.
    pub fn looks_like_user_id(&self) -> bool {
        self.0.len() == 36 && uuid::Uuid::try_parse(&self.0).is_ok()
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
    AuthorizationCode,
    Password,
    RefreshToken,
    ClientCredentials,
    MfaOtp,
}

impl GrantType {
    pub const ALL: [GrantType; 5] = [
        GrantType::AuthorizationCode,
        GrantType::Password,
        GrantType::RefreshToken,
        GrantType::ClientCredentials,
        GrantType::MfaOtp,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            GrantType::AuthorizationCode => "authorization_code",
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
    fn client_ids_are_url_safe() {
        assert!(ClientId::parse("web-app_1.x~").is_some());
        assert!(ClientId::parse("has space").is_none());
        assert!(ClientId::parse("a:b").is_none());
        assert!(ClientId::parse("").is_none());
    }

    #[test]
    fn loopback_redirects_match_on_any_port_and_nothing_else_does() {
        assert!(redirect_uri_matches("http://127.0.0.1/cb", "http://127.0.0.1:53012/cb"));
        assert!(redirect_uri_matches("http://[::1]/cb", "http://[::1]:8080/cb"));
        assert!(redirect_uri_matches("https://app.example/cb", "https://app.example/cb"));
        assert!(!redirect_uri_matches("http://127.0.0.1/cb", "http://127.0.0.1:1/cb2"));
        assert!(!redirect_uri_matches("http://127.0.0.1/cb", "http://127.0.0.2:1/cb"));
        assert!(!redirect_uri_matches("https://app.example/cb", "https://app.example:444/cb"));
        assert!(!redirect_uri_matches("https://app.example/cb", "https://app.example/cb/"));
        assert!(!redirect_uri_matches("http://localhost/cb", "http://localhost:9/cb"));
    }
}
