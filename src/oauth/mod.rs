//! OAuth 2.0 domain logic: clients, grants, token issue, introspection, revocation.
//! Nothing here knows about HTTP; `crate::http::oauth` parses requests and maps results.

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
