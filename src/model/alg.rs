//! JWS signing algorithms a signing key may be made for (RFC 7518 §3, RFC 8037 §3.1).

use std::fmt;

/// One algorithm per key: the key's JWK and every token it signs name it, and a token
/// naming another algorithm for that key is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
pub enum SigningAlg {
    /// RSASSA-PKCS1-v1_5 with SHA-256, RSA-2048.
    RS256,
    /// ECDSA on P-256 with SHA-256.
    ES256,
    /// Ed25519.
    EdDSA,
}

impl SigningAlg {
    pub const ALL: [SigningAlg; 3] = [SigningAlg::RS256, SigningAlg::ES256, SigningAlg::EdDSA];

    pub fn as_str(self) -> &'static str {
        match self {
            SigningAlg::RS256 => "RS256",
            SigningAlg::ES256 => "ES256",
            SigningAlg::EdDSA => "EdDSA",
        }
    }

    /// Exact JOSE spelling only: `es256` or `Ed25519` are not algorithm names.
    pub fn parse(text: &str) -> Result<SigningAlg, String> {
        SigningAlg::ALL
            .into_iter()
            .find(|a| a.as_str() == text)
            .ok_or_else(|| format!("{text:?} is not one of RS256, ES256, EdDSA"))
    }
}

impl fmt::Display for SigningAlg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
