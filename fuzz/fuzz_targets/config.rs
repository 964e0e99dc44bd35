//! Settings text from flags and the environment: durations and rate limits.
#![no_main]

use latchkey::config::{RateLimit, parse_duration, parse_rate_limit};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Ok(duration) = parse_duration(text) {
        assert!(duration.as_secs() <= 10 * 365 * 86_400);
    }
    if let Ok(RateLimit::PerPeriod { count, period }) = parse_rate_limit(text) {
        assert!(count > 0 && !period.is_zero());
    }
});
