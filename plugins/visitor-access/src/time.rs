//! Times for people: milliseconds since the Unix epoch (the plugin's only time format)
//! rendered as RFC 3339 UTC in messages.

use courtyard_sdk::time::civil_from_days;

/// `at` (ms since the epoch, UTC) as `2099-06-01T08:00:00Z` (with `.123` when the
/// milliseconds are not zero).
pub fn rfc3339(at: i64) -> String {
    let secs = at.div_euclid(1000);
    let millis = at.rem_euclid(1000);
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    let (hh, mm, ss) = (rem / 3600, rem % 3600 / 60, rem % 60);
    if millis == 0 {
        format!("{y:04}-{m:02}-{d:02}T{hh:02}:{mm:02}:{ss:02}Z")
    } else {
        format!("{y:04}-{m:02}-{d:02}T{hh:02}:{mm:02}:{ss:02}.{millis:03}Z")
    }
}

/// A duration in milliseconds, for messages: `90 minutes`, `2 days`.
pub fn duration(ms: i64) -> String {
    const MIN: i64 = 60_000;
    const DAY: i64 = 24 * 60 * MIN;
    if ms % DAY == 0 && ms >= DAY {
        plural(ms / DAY, "day")
    } else if ms % MIN == 0 {
        plural(ms / MIN, "minute")
    } else {
        plural(ms, "ms")
    }
}

fn plural(n: i64, unit: &str) -> String {
    if n == 1 || unit == "ms" {
        format!("{n} {unit}")
    } else {
        format!("{n} {unit}s")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_known_instants() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(951_782_400_000), "2000-02-29T00:00:00Z");
        assert_eq!(rfc3339(4_083_984_000_000), "2099-06-01T08:00:00Z");
        assert_eq!(rfc3339(4_102_444_799_999), "2099-12-31T23:59:59.999Z");
        assert_eq!(rfc3339(1_780_308_000_000), "2026-06-01T10:00:00Z");
        assert_eq!(rfc3339(-1000), "1969-12-31T23:59:59Z");
    }

    #[test]
    fn formats_durations() {
        assert_eq!(duration(24 * 3_600_000), "1 day");
        assert_eq!(duration(3 * 24 * 3_600_000), "3 days");
        assert_eq!(duration(90 * 60_000), "90 minutes");
        assert_eq!(duration(60_000), "1 minute");
        assert_eq!(duration(1500), "1500 ms");
    }
}
