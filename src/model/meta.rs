//! What the domain knows of the request it serves.

/// Who is asking, as far as the domain needs to know: for audit and session records.
#[derive(Debug, Clone, Default)]
pub struct RequestMeta {
    pub ip: Option<String>,
    pub user_agent: Option<String>,
}

impl RequestMeta {
    /// The client IP as a rate-limit key; requests from an unknown peer share one budget.
    pub fn ip_key(&self) -> &str {
        self.ip.as_deref().unwrap_or("unknown")
    }
}
