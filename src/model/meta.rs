//! What the domain knows of the request it serves.

use std::net::{IpAddr, Ipv6Addr};

/// Who is asking, as far as the domain needs to know: for audit and session records.
#[derive(Debug, Clone, Default)]
pub struct RequestMeta {
    pub ip: Option<String>,
    pub user_agent: Option<String>,
}

impl RequestMeta {
    /// The client IP as a rate-limit key; requests from an unknown peer share one budget.
    /// An IPv6 client counts by its /64: one subscriber usually gets a whole /64, so
    /// counting single addresses would give each attacker 2^64 budgets. An IPv4-mapped
    /// address counts as the IPv4 address it carries.
    pub fn ip_key(&self) -> String {
        let Some(text) = self.ip.as_deref() else { return "unknown".into() };
        match text.parse::<IpAddr>().map(|ip| ip.to_canonical()) {
            Ok(IpAddr::V6(v6)) => {
                let prefix = u128::from(v6) & !((1u128 << 64) - 1);
                format!("{}/64", Ipv6Addr::from(prefix))
            }
            Ok(v4) => v4.to_string(),
            Err(_) => text.to_owned(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(ip: &str) -> String {
        RequestMeta { ip: Some(ip.into()), user_agent: None }.ip_key()
    }

    #[test]
    fn ipv6_clients_count_by_their_64() {
        assert_eq!(key("2001:db8:1:2:aaaa::1"), "2001:db8:1:2::/64");
        assert_eq!(key("2001:db8:1:2:ffff:ffff:ffff:ffff"), key("2001:db8:1:2::5"));
        assert_ne!(key("2001:db8:1:3::1"), key("2001:db8:1:2::1"));
        assert_eq!(key("203.0.113.9"), "203.0.113.9");
        assert_eq!(key("::ffff:203.0.113.9"), "203.0.113.9");
        assert_eq!(RequestMeta::default().ip_key(), "unknown");
    }
}
