//! latchkey: an OAuth 2.0 / OpenID Connect authorization server.
//!
//! Where things live:
//! - `oauth/`: grants, token issue, introspection, revocation (no HTTP)
//! - `account/`: users, passwords (no HTTP)
//! - `mfa/`: TOTP second factor, recovery codes, the second-factor policy (no HTTP)
//! - `model/`: the shared vocabulary (users, clients, scopes, clock, policy); a leaf
//! - `crypto/`: password hashing, random tokens, sealing secrets at rest
//! - `keys/`: signing keys, JWKS, JWT sign/verify
//! - `mail/`: queued mail delivery (log, dir, smtp)
//! - `store/`: all SQL, for SQLite and PostgreSQL alike
//! - `http/`: routes, handlers, middleware, error responses
//! - `config`, `cli`, `app`: settings, command line, wiring

pub mod account;
pub mod admin;
pub mod app;
pub mod cli;
pub mod config;
pub mod crypto;
pub mod http;
pub mod keys;
pub mod limits;
pub mod mail;
pub mod mfa;
pub mod model;
pub mod oauth;
pub mod services;
pub mod store;
pub mod telemetry;
