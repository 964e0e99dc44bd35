//! The shared vocabulary: users, clients, scopes, the request's meta data, the clock and
//! the second-factor policy. A leaf: it imports nothing else from the crate, so `store/`
//! and every domain module can use it without an import loop.

pub mod client;
pub mod clock;
pub mod meta;
pub mod policy;
pub mod scope;
pub mod user;

pub use client::{Client, ClientId, GrantType};
pub use clock::Clock;
pub use meta::RequestMeta;
pub use scope::Scope;
pub use user::{Email, Password, Role, User, UserStatus, Username};
