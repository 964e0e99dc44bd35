//! Logging setup: text or JSON to stderr (stdout is for command output), filtered by
//! LATCHKEY_LOG.

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

use crate::config::LogFormat;

/// Installs the subscriber. `log_filter` is LATCHKEY_LOG's value; a filter that cannot be
/// meant (a misspelt level) is an error, never a silent logger.
pub fn init(format: LogFormat, log_filter: Option<&str>) -> Result<(), String> {
    let filter = parse_filter(log_filter.unwrap_or("info"))?;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal());
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().flatten_event(true).with_current_span(true).try_init(),
    };
    Ok(())
}

/// Crates that log; a bare name among them (or a path below one) is a target filter.
const TARGETS: [&str; 9] =
    ["latchkey", "sqlx", "poem", "poem_openapi", "hyper", "tokio", "lettre", "tower", "h2"];

/// EnvFilter reads a bare word as a target, so `LATCHKEY_LOG=degub` would quietly turn every
/// line off. Each directive must be a level, `target=level`, or a target we know.
fn parse_filter(text: &str) -> Result<EnvFilter, String> {
    use std::str::FromStr;
    use tracing_subscriber::filter::LevelFilter;
    let reject = |d: &str| {
        format!(
            "LATCHKEY_LOG: {d:?} is neither a level (off, error, warn, info, debug, trace) nor target=level"
        )
    };
    for directive in text.split(',').map(str::trim).filter(|d| !d.is_empty()) {
        let ok = match directive.rsplit_once('=') {
            Some((_, level)) => LevelFilter::from_str(level).is_ok(),
            None => {
                LevelFilter::from_str(directive).is_ok()
                    || TARGETS.iter().any(|t| directive == *t || directive.starts_with(&format!("{t}::")))
            }
        };
        if !ok {
            return Err(reject(directive));
        }
    }
    EnvFilter::try_new(text).map_err(|e| format!("LATCHKEY_LOG: {e}"))
}

#[cfg(test)]
mod tests {
    use super::parse_filter;

    #[test]
    fn misspelt_levels_are_refused() {
        for good in ["info", "warn,latchkey=debug", "latchkey::http=trace", "sqlx=warn", "off", ""] {
            assert!(parse_filter(good).is_ok(), "{good}");
        }
        for bad in ["degub", "info,latchky=dbug", "inof"] {
            assert!(parse_filter(bad).is_err(), "{bad}");
        }
    }
}
