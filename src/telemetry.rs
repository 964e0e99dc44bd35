//! Logging setup: text or JSON to stderr (stdout is for command output), filtered by
//! LATCHKEY_LOG. The request log line's fields that are only learnt while the request runs
//! (the client, the grant, the error code) are recorded here on the request's span.

pub mod metrics;

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

use crate::config::LogFormat;

pub fn init(format: LogFormat) {
    let filter = EnvFilter::try_from_env("LATCHKEY_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal());
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().flatten_event(true).with_current_span(true).try_init(),
    };
}

/// The fields the request span declares empty and these functions fill in.
pub const CLIENT_ID: &str = "client_id";
pub const GRANT_TYPE: &str = "grant_type";
pub const ERROR: &str = "error";

/// The authenticated client of this request (a registered id: never a secret).
pub fn note_client(client_id: &str) {
    tracing::Span::current().record(CLIENT_ID, tracing::field::display(client_id));
}

pub fn note_grant(grant: &str) {
    tracing::Span::current().record(GRANT_TYPE, tracing::field::display(grant));
}

/// The `error` code the response carries (`invalid_grant`, `not_found`, …).
pub fn note_error(code: &str) {
    tracing::Span::current().record(ERROR, tracing::field::display(code));
}
