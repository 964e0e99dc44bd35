//! Cryptographic helpers with no domain knowledge: password hashing, random tokens and
//! their hashes, sealing secrets at rest.

pub mod password;
pub mod sealed;
pub mod secrets;
