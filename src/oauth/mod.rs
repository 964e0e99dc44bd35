//! OAuth 2.0 domain logic: clients, grants, token issue, introspection, revocation.
//! Nothing here knows about HTTP; `http::oauth` parses requests and maps results.
//!
//! # Design notes
//!
//! ## Token lifecycle
//!
//! Every grant ends in [`issue`], the one place tokens are minted. A user login (password,
//! MFA, authorization code) first records a **session**: the family of refresh tokens
//! rotated from that login, with its absolute lifetime (four refresh TTLs). Access tokens
//! are signed JWTs (RFC 9068) that carry the session id as `sid`; a refresh token names its
//! session and generation under a MAC (`crypto::refresh`), and the session row holds the
//! SHA-256 hashes of the current token and of the one before, nothing per token.
//!
//! - *Refresh* moves the session from the presented token's generation to the next in one
//!   conditional write; presenting an older generation's token again is reuse (RFC 9700
//!   §4.14.2): the whole session ends and the event is audited. Tokens from before
//!   generations (`refresh_tokens`) count as generation 0 of their session.
//! - *Revocation* of a refresh token ends its session. Access tokens are not stored; they
//!   die with their session, their user (disabled, deleted), their client (deleted, or for
//!   client-credentials tokens a newer secret: `clients.tokens_valid_after`), or by `jti`
//!   when revoked one by one (`revoked_access_tokens`, kept until they would expire anyway).
//! - *Introspection* therefore checks the signature, `iss`, `exp` and `typ` offline, then asks
//!   the database in one statement for the jti, session, user and client state
//!   (`store::sessions::access_token_state`). Resource servers that validate offline see
//!   none of that: access tokens stay short-lived for them.
//!
//! ## Audience
//!
//! A token is for the APIs its client was registered for (`--audience`), or the client
//! itself, and for latchkey's own APIs only when its scope holds `account` or `admin`
//! ([`issue`] decides `aud`; [`tokens::authenticate_bearer`] enforces scope and audience at
//! latchkey's own routes). Scope and audience move together so that a token handed to a
//! resource server cannot be replayed against `/account` or `/admin`. Introspection shows a
//! token only to its client or to a caller its `aud` names (never through the issuer
//! audience), and answers everything else with the same `{"active": false}`.

pub mod authorize;
pub mod client;
pub mod error;
pub mod grants;
pub mod introspect;
pub mod issue;
pub mod revoke;
pub mod tokens;
pub mod userinfo;

pub use error::OAuthError;
